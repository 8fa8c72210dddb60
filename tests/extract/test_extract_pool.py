"""Extract's worker pool when a worker dies between two jobs going in: the pool is found broken by
``submit`` itself (not by a job's result), and the job being handed in must run again like the jobs
that were in the pool. Seen on a loaded machine: the run ended with BrokenProcessPool, then hung in
the broken executor's shutdown."""

import os
import signal
import time

from m5data.config import load
from m5data.extract.pool import WorkerPool
from m5data.extract.worker import Context


def job(batch: list[str]) -> list[str]:
    """A pool job (a batch of captions, as the text jobs take): ``die`` kills its worker, as a crash in a
    native decoder would; the others come back upper-cased."""
    if batch == ["die"]:
        os.kill(os.getpid(), signal.SIGKILL)
    return [s.upper() for s in batch]


def test_a_job_handed_to_a_pool_already_broken_runs_again_and_the_run_goes_on(tmp_path):
    settings = load(None, {"store.path": str(tmp_path / "store")}, environ={})
    pool = WorkerPool(2, Context(str(tmp_path / "store"), settings.extract))
    seen_broken = []

    def items():
        yield ["die"]
        deadline = time.monotonic() + 60  # the next job goes in only once the pool knows its worker died
        while not pool.executor._broken and time.monotonic() < deadline:
            time.sleep(0.01)
        seen_broken.append(bool(pool.executor._broken))
        yield from (["a"], ["b"], ["c"])

    try:
        results = {tuple(item): result for item, result in pool.imap("text", job, items())}
    finally:
        pool.close()
    assert seen_broken == [True]  # "a" met the broken pool in submit
    assert pool.restarts == 1
    assert {k: results[(k,)] for k in "abc"} == {"a": ["A"], "b": ["B"], "c": ["C"]}
    assert [o.status for o in results[("die",)].outcomes] == ["failed"]  # the job that killed it, alone

"""Chaos run: SIGKILL every stage at random points, finish, and compare with an uninterrupted run.

    python benchmarks/chaos.py [--products 40] [--seed 0] [--kills 5] [--video-rate 0.2] [--max-delay 15]
                               [--workdir DIR] [--keep] [--s3 [s3://bucket/prefix]]

A seeded demo world (``--products`` products) is generated and served on 127.0.0.1. A reference
store is built by running crawl, download, extract, align and ``doctor --repair`` once each, every
stage as its own ``python -m m5data`` process. A second store is built from the same shop where
every stage is first started and SIGKILLed (the whole process group, workers included) ``--kills``
times after a random delay (uniform in [0.2 s, min(0.9 x the stage's reference time, --max-delay)]),
then run to completion (each killed run resumes the previous one's work, so the kills land at
different points of the stage's work). Then every table (sorted rows, without timestamps and run ids; ``runs`` excepted),
every blob and every derived file is compared with the reference (``normalise`` and
``SKIP_COLUMNS`` list what is left out of the comparison, and why). Prints kills, mismatched rows,
bad blobs, duplicate keys and leftover temp files; exits 1 when any is not 0.

``--s3``: both stores live on object storage, on moto's S3 server started by the script on 127.0.0.1
(tests/support/s3_server.py), or below ``s3://bucket/prefix`` when one is given (endpoint and key from
the AWS environment). Then "leftover temp files" are the part objects no log entry names (a killed
writer's uploads) after the final ``doctor --repair``, which runs with ``store.garbage_grace=0``
(nothing else writes the store by then), and every stage process gets one TMPDIR under the work
folder (as on one machine): killed runs' ``m5data-*`` scratch left there at the end counts as leftover too.
An ``align`` run is also paused (SIGSTOP) past its lease while the run to completion takes it over, then
resumed: its commits must be refused and the store still equal the reference (``PAUSED_STAGE``).
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]  # tests/support: the demo shop fixtures

STAGES = ["crawl", "download", "extract", "align", "doctor"]
# --s3: a run of this stage is SIGSTOPped (a random delay after it took its lease) until its lease of PAUSED_LEASE seconds
# has run out, the run to completion takes the lease over, then the paused one is SIGCONTed: its
# commits are refused (LeaseLost), and the store must still equal the reference
PAUSED_STAGE, PAUSED_LEASE = "align", 4
# Columns that record how the work went, not what it produced (plus every timestamp column):
# run ids; a URL's fetch attempts (an attempt of a killed run is counted only if it was recorded,
# e.g. a "500 once" answer the killed run got and the reference run retried).
SKIP_COLUMNS = {"run_id", "attempts"}
_POINTER = re.compile(r"0x[0-9a-f]{6,}")  # ffmpeg's log prefixes carry heap addresses


def normalise(name: str, row: dict, root: Path) -> dict:
    """A row without what differs between two correct runs: the store's own path in error texts,
    heap addresses in ffmpeg messages, and meta.reused (frames made by a killed run and reused)."""
    if row.get("error"):
        row["error"] = _POINTER.sub("0x?", row["error"].replace(str(root), "<store>"))
    if name == "media" and row.get("meta"):
        try:
            meta = json.loads(row["meta"])
        except ValueError:
            meta = None
        if isinstance(meta, dict):
            meta.pop("reused", None)
            row["meta"] = json.dumps(meta, sort_keys=True, ensure_ascii=False)
    return row


def stage_args(stage: str, url: str, shop: Path) -> list[str]:
    return {
        "crawl": ["crawl", "--start-url", f"{url}/"],
        "download": ["download", "--no-progress"],
        "extract": ["extract", "--no-progress"],
        "align": ["align", "--mapping", str(shop / "truth" / "level1_mapping.toml")],
        "doctor": ["doctor", "--repair"],
    }[stage]


def global_args(store: Path | str, stage: str = "") -> list[str]:
    from m5data import config as cfg

    args = ["--store", str(store), "--set", "download.allow_private=true"]
    if isinstance(store, str) and stage == "doctor":  # on S3: the killed writers' part objects go at once
        args += ["--set", "store.garbage_grace=0"]
    if hasattr(cfg.CrawlSettings(), "allow_private"):  # the crawler's private-address policy, where it exists
        args += ["--set", "crawl.allow_private=true"]
    return args


_live: list[subprocess.Popen] = []  # the stage process running now (killed if this script is stopped)


def start(store: Path | str, stage: str, url: str, shop: Path, cwd: Path, extra: tuple[str, ...] = ()) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "DO_NOT_TRACK": "1"}
    env.setdefault("NUMBA_CACHE_DIR", str(ROOT / ".cache" / "numba"))
    if isinstance(store, str):  # on S3: the runs' local scratch, one TMPDIR as on one machine (counted at the end)
        scratch = cwd / "tmp"
        scratch.mkdir(parents=True, exist_ok=True)
        env["TMPDIR"] = str(scratch)
    # own session: the kill reaches the stage's workers (extract pool, Scrapy subprocess) too
    proc = subprocess.Popen([sys.executable, "-m", "m5data", *global_args(store, stage), *extra,
                             *stage_args(stage, url, shop)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, cwd=cwd, env=env,
                            start_new_session=True)
    _live[:] = [proc]
    return proc


def wait_for_lease(root: str, stage: str, proc: subprocess.Popen, timeout: float = 120.0) -> bool:
    """Wait until ``proc`` holds ``stage``'s lease on the S3 store ``root`` (False: it ended first)."""
    from m5data.storage import Store
    from m5data.storage.commitlog import TableLog

    log = TableLog(Store.open(root).objects, stage, base=f"locks/{stage}")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        lease = log.state().lease
        if lease and lease.get("pid") == proc.pid:
            return True
        time.sleep(0.05)
    return False


def finish(proc: subprocess.Popen, what: str) -> tuple[int, float]:
    t = time.monotonic()
    err = proc.stderr.read().decode(errors="replace")
    code = proc.wait()
    if code not in (0,):
        print(f"  {what}: exit {code}: {err.strip().splitlines()[-1] if err.strip() else ''}", flush=True)
    return code, time.monotonic() - t


def kill_group(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait()
    proc.stderr.close()


# ------------------------------------------------------------------------------------ comparison
def table_rows(store, name: str) -> Counter:
    import pyarrow as pa

    t = store.read(name)
    keep = [f.name for f in t.schema if f.name not in SKIP_COLUMNS and not pa.types.is_timestamp(f.type)]
    return Counter(json.dumps(normalise(name, row, store.root), sort_keys=True, default=str, ensure_ascii=False)
                   for row in t.select(keep).to_pylist())


def explain(name: str, only_ref: list[str], only_got: list[str], show: int = 3) -> None:
    """Print which columns differ for a few mismatched keys (what to look at)."""
    from m5data.storage import TABLES

    key = TABLES[name].key
    ref = {tuple(json.loads(r)[k] for k in key): json.loads(r) for r in only_ref}
    got = {tuple(json.loads(r)[k] for k in key): json.loads(r) for r in only_got}
    for k in sorted(set(ref) | set(got), key=str)[:show]:
        a, b = ref.get(k), got.get(k)
        if a is None or b is None:
            row = b if a is None else a
            shown = "; ".join(f"{c}={v!r}" for c, v in row.items() if c not in key and v not in (None, "", [], {}))
            print(f"  {name} {k}: only in the {'chaos' if a is None else 'reference'} store ({shown})")
            continue
        cols = {c: (a[c], b[c]) for c in a if a[c] != b.get(c)}
        print(f"  {name} {k}: " + "; ".join(f"{c}: reference {x!r} / chaos {y!r}" for c, (x, y) in cols.items()))


def duplicate_keys(store, name: str) -> int:
    from m5data.storage import TABLES

    keys = ", ".join(TABLES[name].key)
    con = store.connect()
    try:
        return con.execute(f"SELECT count(*) - count(DISTINCT ({keys})) FROM {name}").fetchone()[0]
    finally:
        con.close()


def file_digests(root: Path | str, sub: str) -> dict[str, str]:
    if isinstance(root, str):
        return object_digests(root, sub)
    out = {}
    base = root / sub
    if not base.exists():
        return out
    for path in sorted(base.rglob("*")):
        rel = path.relative_to(root)
        if path.is_file() and not any(p.startswith(".") for p in rel.parts):
            out[str(rel)] = hashlib.sha256(comparable(rel, path.read_bytes())).hexdigest()
    return out


def object_digests(url: str, sub: str) -> dict[str, str]:
    """``file_digests`` of a store on object storage: every object below ``sub/`` (no hidden name)."""
    from m5data.storage import Store

    objects = Store.open(url).objects
    rels = [o.rel for o in objects.listing(f"{sub}/")
            if not any(p.startswith(".") for p in Path(o.rel).parts)]
    out = {}
    for i in range(0, len(rels), 64):
        for rel, data in objects.get_many(rels[i:i + 64]).items():
            out[rel] = hashlib.sha256(comparable(Path(rel), data)).hexdigest()
    return out


def explain_file(ref_root: Path | str, got_root: Path | str, rel: str) -> str:
    """How a differing Parquet file differs (rows only in one, row order, schema with its list items' names,
    metadata, layout): what a byte compare cannot say; empty for another kind of file, the error's name for
    one missing or unreadable on a side."""
    import io

    import pyarrow.parquet as pq

    from m5data.storage import Store

    if not rel.endswith(".parquet"):
        return ""
    try:  # each side read once: its rows and its layout
        ref, got = (pq.ParquetFile(io.BytesIO(Store.open(str(root)).read_bytes(rel) or b"")) for root in (ref_root, got_root))
        ta, tb = ref.read(), got.read()
    except Exception as exc:  # one side missing or unreadable: the byte compare said enough
        return f" ({type(exc).__name__})"
    a, b = ta.to_pylist(), tb.to_pylist()
    only_ref, only_got = sorted(set(map(repr, a)) - set(map(repr, b))), sorted(set(map(repr, b)) - set(map(repr, a)))
    said = [f"rows {len(a)} / {len(b)}", f"only in the reference {len(only_ref)}", f"only here {len(only_got)}"]
    if not only_ref and not only_got:
        said.append("same rows in another order" if a != b else "same rows, same order")
    schemas = [str(t.schema.remove_metadata()).replace("\n", ", ") for t in (ta, tb)]  # str: names list items too
    if schemas[0] != schemas[1]:
        said.append(f"schema {schemas[0]} / {schemas[1]}")
    if (ta.schema.metadata or {}) != (tb.schema.metadata or {}):
        said.append(f"metadata {ta.schema.metadata} / {tb.schema.metadata}")
    ma, mb = ref.metadata, got.metadata
    if ma.num_row_groups != mb.num_row_groups:
        said.append(f"row groups {ma.num_row_groups} / {mb.num_row_groups}")
    if only_ref or only_got:
        said.append(f"e.g. {(only_ref or only_got)[0][:200]}")
    return " (" + "; ".join(said) + ")"


def leftovers(store) -> list[str]:
    """What killed runs left in the store: temp files of dead processes (folder), or part objects no
    log entry names (object storage; ``doctor --repair`` ran last, with no grace)."""
    from m5data.storage.temps import find_temps

    if (folder := store.local_root()) is None:
        return [rel for rel, _ in store.uncommitted()]
    return [str(t.path.relative_to(folder)) for t in find_temps(folder)]


def comparable(rel: Path, data: bytes) -> bytes:
    """What of a derived file two stores built alike share: a stage's state (derived/state/) names the
    store's own write sequence numbers (times) and its paths, which differ between any two stores."""
    if rel.parts[:2] != ("derived", "state") or rel.suffix != ".json":
        return data
    state = json.loads(data)
    state.pop("watermarks", None)
    state.pop("inputs", None)
    return json.dumps(state, sort_keys=True).encode()


def compare(ref_root: Path | str, got_root: Path | str) -> dict:
    from m5data.storage import TABLES, Store

    ref, got = Store.open(ref_root), Store.open(got_root)
    mismatched = {}
    dups = {}
    for name in TABLES:
        if name == "runs":
            continue
        a, b = table_rows(ref, name), table_rows(got, name)
        diff = sum(((a - b) + (b - a)).values())
        if diff:
            mismatched[name] = diff
            explain(name, list((a - b).elements()), list((b - a).elements()))
        d = duplicate_keys(got, name)
        if d:
            dups[name] = d
    ref_blobs, got_blobs = file_digests(ref_root, "blobs"), file_digests(got_root, "blobs")
    bad_blobs = sum(1 for rel, digest in got_blobs.items() if Path(rel).name.split(".")[0] != digest)
    blob_diff = len(set(ref_blobs) ^ set(got_blobs))
    ref_derived, got_derived = file_digests(ref_root, "derived"), file_digests(got_root, "derived")
    differing = sorted(rel for rel in set(ref_derived) | set(got_derived) if ref_derived.get(rel) != got_derived.get(rel))
    for rel in differing:
        print(f"derived file differs from the reference: {rel}{explain_file(ref_root, got_root, rel)}")
    derived_diff = len(differing)
    temps = leftovers(got)
    return {"mismatched": mismatched, "dups": dups, "bad_blobs": bad_blobs, "blob_diff": blob_diff,
            "blobs": len(got_blobs), "derived_diff": derived_diff, "derived": len(got_derived), "temps": temps,
            "rows": {name: sum(table_rows(got, name).values()) for name in ("products", "specs", "media", "captions")}}


# ------------------------------------------------------------------------------------------ main
def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--products", type=int, default=40)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--kills", type=int, default=5, help="SIGKILLs per stage before it is run to completion")
    parser.add_argument("--video-rate", type=float, default=0.2,
                        help="share of products with a video (extract's frames and audio are the slow part)")
    parser.add_argument("--max-delay", type=float, default=15.0, help="latest kill, in seconds after a stage starts")
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--keep", action="store_true", help="keep the work folder")
    parser.add_argument("--s3", nargs="?", const="moto", default=None, metavar="s3://bucket/prefix",
                        help="both stores on object storage: moto's server started here (no value), or below "
                             "this prefix (endpoint and key from the AWS environment)")
    args = parser.parse_args()
    with contextlib.ExitStack() as stack:
        return chaos(args, stack)


def s3_prefix(args, work: Path, stack: contextlib.ExitStack) -> str:
    """Where the two stores go on object storage; starts moto's server when no prefix was given."""
    if args.s3 != "moto":
        if not args.s3.startswith("s3://"):
            raise SystemExit(f"--s3 {args.s3}: expected s3://bucket/prefix")
        return f"{args.s3.rstrip('/')}/chaos-{time.time_ns()}"
    from support.s3_server import moto_server

    server = stack.enter_context(moto_server(work / "moto"))
    for name in ("AWS_PROFILE", "AWS_ENDPOINT_URL", "AWS_SESSION_TOKEN"):
        os.environ.pop(name, None)
    os.environ.update(server["env"])  # this process and every stage process talk to it
    return f"s3://{server['bucket']}/chaos"


def chaos(args, stack: contextlib.ExitStack) -> int:

    from support.demo_fixtures import cached_shop

    from m5data.demo.server import serve_in_thread
    from m5data.storage import Store

    rng = random.Random(args.seed)
    work = args.workdir or Path(tempfile.mkdtemp(prefix="m5data-chaos-"))
    work.mkdir(parents=True, exist_ok=True)
    shop = cached_shop(work / "shops", products=args.products, seed=args.seed, video_rate=args.video_rate)
    if args.s3:
        prefix = s3_prefix(args, work, stack)
        ref_root, got_root = f"{prefix}/reference", f"{prefix}/chaos"
    else:
        ref_root, got_root = work / "reference", work / "chaos"
        for root in (ref_root, got_root):
            shutil.rmtree(root, ignore_errors=True)
    for root in (ref_root, got_root):
        Store.init(root)
    t0 = time.monotonic()
    print(f"chaos: seed {args.seed}, {args.products} products (video rate {args.video_rate}), "
          f"{args.kills} kills per stage, work {work}, stores {ref_root} and {got_root}", flush=True)
    kills: Counter = Counter()
    runs: Counter = Counter()
    ref_seconds: dict[str, float] = {}
    with serve_in_thread(shop, slow_seconds=0.3) as running:
        running.reset_faults()
        for stage in STAGES:  # the reference: each stage once, uninterrupted
            t = time.monotonic()
            code, _ = finish(start(ref_root, stage, running.url, shop, work), f"reference {stage}")
            ref_seconds[stage] = time.monotonic() - t
            if code != 0:
                print(f"reference {stage} failed (exit {code}); stopping", flush=True)
                return 1
        running.reset_faults()
        for stage in STAGES:
            upper = max(0.5, min(0.9 * ref_seconds[stage], args.max_delay))
            while kills[stage] < args.kills:
                proc = start(got_root, stage, running.url, shop, work)
                runs[stage] += 1
                delay = rng.uniform(0.2, upper)
                deadline = time.monotonic() + delay
                while time.monotonic() < deadline and proc.poll() is None:
                    time.sleep(0.01)
                if proc.poll() is None:
                    kill_group(proc)
                    kills[stage] += 1
                else:  # it finished before the kill: the next try kills sooner
                    finish(proc, f"{stage} (not killed)")
                    upper = max(0.3, upper * 0.7)
            paused = None
            if args.s3 and stage == PAUSED_STAGE:  # a writer paused past its lease while the next run takes over
                paused = start(got_root, stage, running.url, shop, work, ("--set", f"store.lease_seconds={PAUSED_LEASE}"))
                leased = wait_for_lease(got_root, stage, paused)  # paused while it holds the lease, at a random point
                time.sleep(rng.uniform(0.0, 0.2 * ref_seconds[stage]) if leased else 0.0)
                os.killpg(paused.pid, signal.SIGSTOP)
                time.sleep(PAUSED_LEASE + 1)  # its lease runs out while it is stopped
            code, _ = finish(start(got_root, stage, running.url, shop, work), f"{stage} to completion")
            runs[stage] += 1
            if code != 0:
                print(f"{stage}: the run after the kills failed (exit {code})", flush=True)
            if paused is not None:  # resumed after the other run finished: it must write nothing more
                os.killpg(paused.pid, signal.SIGCONT)
                pcode, _ = finish(paused, f"{stage} paused past its lease, resumed")
                runs[stage] += 1
                print(f"  {stage} paused past its lease ({'while holding it' if leased else 'it ended before it was seen'}): "
                      f"exit {pcode} ({'its commits refused' if pcode else 'its commits had landed before the pause'})",
                      flush=True)
    result = compare(ref_root, got_root)
    print(f"{'stage':<10}{'kills':>6}{'runs':>6}{'reference s':>13}")
    for stage in STAGES:
        print(f"{stage:<10}{kills[stage]:>6}{runs[stage]:>6}{ref_seconds[stage]:>13.1f}")
    print(f"store: {', '.join(f'{n} {v:,} rows' for n, v in result['rows'].items())}, "
          f"{result['blobs']} blobs, {result['derived']} derived files")
    print(f"kills: {sum(kills.values())}")
    print(f"mismatched rows: {sum(result['mismatched'].values())}"
          + (f" ({', '.join(f'{k} {v}' for k, v in result['mismatched'].items())})" if result["mismatched"] else ""))
    print(f"bad blobs: {result['bad_blobs']} (blob files differing from the reference: {result['blob_diff']})")
    print(f"derived files differing from the reference: {result['derived_diff']}")
    print(f"duplicate keys: {sum(result['dups'].values())}")
    print(f"leftover temp files: {len(result['temps'])}"
          + (f" ({', '.join(result['temps'][:5])})" if result["temps"] else ""))
    scratch = []
    if args.s3:  # local scratch of killed runs: the next stage (or doctor --repair) on the machine removes it
        scratch = [p for p in (work / "tmp").rglob("*") if p.is_file() and any(
            part.startswith("m5data-") for part in p.relative_to(work / "tmp").parts)]
        print(f"local scratch left by killed runs: {len(scratch)} files, "
              f"{sum(p.stat().st_size for p in scratch) / 1e6:.1f} MB")
    print(f"wall time: {time.monotonic() - t0:.0f} s")
    bad = (sum(result["mismatched"].values()) + result["bad_blobs"] + result["blob_diff"] + result["derived_diff"]
           + sum(result["dups"].values()) + len(result["temps"]) + len(scratch))
    if not args.keep and not args.workdir:
        shutil.rmtree(work, ignore_errors=True)
    return 1 if bad else 0


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    try:
        sys.exit(main())
    finally:
        for p in _live:
            if p.poll() is None:
                kill_group(p)

"""What a report run takes over from the last complete one.

Every section of the report reads tables of the store (every table; of ``runs`` only its row count), the review file
that align writes with its tables, a truth folder and a training run folder. When none of those
tables was written since the report's last complete run (their watermarks, ``storage/changes.py``)
and the settings, the output folder (untouched since: same files, sizes and times), the truth and the training run are the same,
the report in the folder is the one a rebuild would write (but for its "written" time): the stage does nothing and
says ``new 0, changed 0, unchanged N``. Otherwise the page is written again from the facts (``facts.py``:
only those of the groups written since are made again), the figures whose values did not change are
copied from the folder (when it is untouched) and the gallery samples of untouched products are taken
from the state (:class:`Last`); new and changed products are counted from what the facts update asked.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from ..storage import changes
from ..storage.schema import TABLES
from . import facts

if TYPE_CHECKING:
    from ..stage_run import StageRun

STAGE = "report"
# Every stage writes runs: a report kept because nothing else changed shows the count of runs rows
# as of its writing (the overview's one figure from runs).
READS = tuple(t for t in TABLES if t != "runs")


def tree_stamp(path) -> list | None:
    """Names, sizes and times of the files under ``path`` (a truth or training run folder), or None."""
    if not path:
        return None
    root = Path(path)
    if root.is_file():
        st = root.stat()
        return [[root.name, st.st_size, st.st_mtime_ns]]
    if not root.is_dir():
        return [str(root), "missing"]
    out = []
    for p in sorted(root.rglob("*")):
        if p.is_file():
            st = p.stat()
            out.append([str(p.relative_to(root)), st.st_size, st.st_mtime_ns])
    return out


def untouched(state: dict | None, out: Path) -> bool:
    """The report folder holds exactly what the last complete run left there (same files, sizes, times)."""
    return bool(state) and (out / "index.html").is_file() and state.get("folder") == tree_stamp(out)


def inputs(settings, out: Path, truth, train_run) -> tuple:
    """What beside the tables decides the page (the run's fingerprint is made of it: the registry's
    ``inputs``, ``stage.inputs``)."""
    report = {k: v for k, v in asdict(settings.report).items() if k != "out"}  # the folder is ``out`` itself
    return report, str(out), tree_stamp(truth), tree_stamp(train_run)


@dataclass
class Last:
    """What this run takes over from the last complete one (nothing with ``full`` or without one)."""

    state: dict | None = None
    summary: dict = field(default_factory=dict)
    facts: dict[str, list[str]] | None = None  # its facts files (None: make every fact)
    watermarks: dict[str, int] = field(default_factory=dict)  # what its facts were made from
    figures: Path | None = None  # its figure folder, when the report folder is as it left it
    kept_facts: dict[str, list[str]] | None = None  # the facts files the state in force names (full or not)
    assets: Path | None = None  # its gallery's pictures, when the report folder is as it left it

    @classmethod
    def of(cls, run: StageRun, out: Path) -> Last:
        """What run ``run`` (the contract's: its state, whether it is full) takes over for the folder ``out``.

        Not ``run.since``: the facts are made of the tables alone, so they are taken over from the last
        complete run whatever its inputs (other report settings, folder, truth or training run change the
        page, not the facts; ``run.since`` is None then), from the watermarks they were made at."""
        state = run.state
        summary = (state or {}).get("summary") or {}
        kept = summary.get("facts") if summary.get("facts_version") == facts.VERSION else None
        if run.full or state is None:  # run.why_full: a full run asked, no earlier complete run
            return cls(state, {}, None, {}, None, kept)
        same = untouched(state, out)
        return cls(state, summary, kept, dict(state.get("watermarks", {})) if kept else {},
                   out / "figures" if same else None, kept, out / "assets" if same else None)


def product_counts(store, made: facts.Facts, state: dict | None, products: int) -> dict[str, int]:
    """New, changed and unchanged products since the last complete run, from what the facts update asked."""
    if "products" in made.changed:
        return changes.changed_counts(made.changed["products"], products)
    if "products" not in made.whole:
        return {"new": 0, "changed": 0, "unchanged": products}
    return changes.product_changes(store, state)

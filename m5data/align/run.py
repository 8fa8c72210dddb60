"""The align stage: products -> ``taxonomy`` + ``label_map`` + a review file (a global job).

``run(store, settings, ...)`` is the stage's library function; :func:`align` does the work in the run
the contract opens (``stage.py``'s ``run(ctx, run)``, else :func:`~m5data.stages.opened`) and returns an
:class:`AlignReport` with everything the CLI prints (unmapped level-1 names, sub-classes without
titles, pair counts, problems in a review file).
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa

from .. import config as cfg
from ..errors import UserError
from ..stages import StageRun, opened
from ..storage import StageStats
from . import incremental
from . import review as review_file
from .candidates import REASONS, candidate_arrays, score_pairs
from .decisions import Decided, check_renames, decide_all
from .inventory import Inventory, read_inventory
from .mapping import Level1Mapping
from .merge import PreviousIds, assign_ids, build_groups, label_map_rows, taxonomy_rows
from .similarity import ENGINES, WEIGHTINGS, warm_up
from .tokens import TokenCache

Progress = Callable[[str, int, int], None]


class AlignError(UserError, ValueError):
    """Align cannot start (no mapping file, bad option combination); one line for the user."""


@dataclass
class AlignReport:
    """What one align run did, beyond the stage counts."""

    stats: StageStats
    n_subclasses: int = 0
    n_groups: int = 0
    n_children: int = 0
    n_pairs: int = 0
    n_scored: int = 0  # pairs whose scores were computed in this run (the rest came from --review)
    merges: Counter = field(default_factory=Counter)  # reason -> merged pairs
    overrides: Counter = field(default_factory=Counter)  # accept / reject / rename applied
    unmapped: dict[tuple[str, str], int] = field(default_factory=dict)
    untitled: list[tuple[str, str, str]] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    review_path: Path | None = None


def check_settings(s: cfg.Settings) -> None:
    """Reject bad values and combinations of the ``[align]`` settings before any work."""
    a = s.align
    if a.engine not in ENGINES:
        raise cfg.ConfigError(f"config align.engine must be one of {', '.join(ENGINES)}, got {a.engine!r}")
    if a.weighting not in WEIGHTINGS:
        raise cfg.ConfigError(f"config align.weighting must be one of {', '.join(WEIGHTINGS)}, got {a.weighting!r}")
    if a.engine == "simtext" and a.weighting != "binary":
        raise cfg.ConfigError("config align.engine = simtext computes binary presence vectors only; "
                              "use align.weighting = binary (or engine bulk for counts)")
    if a.workers < 0:
        raise cfg.ConfigError(f"config align.workers must be >= 0, got {a.workers!r}")


REVIEW = "derived/align/review.csv"  # the review file's place in the store when none is set
NO_MAPPING = "no level-1 mapping file: pass --mapping FILE or set align.mapping"


def review_target(s: cfg.Settings, review_out) -> Path | None:
    """Where the review file goes: ``--review-out``, else ``review.file`` (shared: the report shows it); None:
    the store's ``REVIEW``."""
    chosen = review_out or s.review.file
    return Path(chosen) if chosen else None


def run(store, settings: cfg.Settings, **kwargs) -> StageStats:
    """Stage contract: align the store's products; see :func:`align` for the arguments."""
    return align(store, settings, **kwargs).stats


def align(store, settings: cfg.Settings, *, mapping: str | Path | None = None, review: str | Path | None = None,
          review_out: str | Path | None = None, renumber: bool = False, full: bool = False,
          progress: Progress | None = None, run: StageRun | None = None) -> AlignReport:
    """Build the taxonomy and label map from ``products`` and write them and the review file.

    Args:
        mapping: level-1 mapping file (default ``align.mapping``).
        review: a reviewed file to re-apply: its scores are reused and its overrides applied.
        review_out: where to write the new review file (default ``review.file``).
        renumber: ignore the ids of the previous alignment (default: keep them stable).
        full: score every pair again (default: reuse the last complete run's scores of pairs whose
            term vectors are unchanged, and do nothing when no product was written since; ``incremental.py``).
        progress: ``progress(step, done, total)`` callback for long steps.
        run: the run the contract opened (``stage.py``'s ``run(ctx, run)``: its ``full`` is the run's, its
            options name these arguments); None: opened here through the contract (``stages.opened``),
            once the settings, the mapping and the review file read.
    """
    check_settings(settings)
    a = settings.align
    path = mapping or a.mapping
    if not path:
        raise AlignError(NO_MAPPING)
    level1 = Level1Mapping.load(path)
    reviewed = review_file.read(review) if review else review_file.Reviewed()
    out = review_target(settings, review_out)
    with (contextlib.nullcontext(run) if run is not None else  # one align per store: the contract's lock
          opened(incremental.STAGE, store, settings, mapping=mapping, review=review, review_out=review_out,
                 renumber=renumber, full=full)) as run:
        return _align(run, settings, level1, reviewed, path=path, review=review, out=out, renumber=renumber,
                      progress=progress)


def _align(run: StageRun, settings: cfg.Settings, level1: Level1Mapping, reviewed, *, path, review, out: Path | None,
           renumber: bool, progress: Progress | None) -> AlignReport:
    store, stats, state, full = run.store, run.stats, run.state, run.full
    a = settings.align
    report = AlignReport(stats, problems=list(reviewed.problems))
    where = out if out is not None else store.where(REVIEW)  # a path, or the object's URL
    written = out.is_file() if out is not None else REVIEW in store.files(REVIEW.rsplit("/", 1)[0])
    if run.unchanged() and written:
        return _unchanged(run, report, where)

    warm_up()  # jieba's dictionary and scipy, loaded while the store is read
    inv = read_inventory(store, level1, a.content_chars)
    subs = inv.subclasses
    report.n_subclasses = len(subs)
    report.unmapped = dict(inv.unmapped)
    report.untitled = [s.key for s in subs if s.class_id is not None and not s.text]
    left, right = candidate_arrays(subs)
    report.n_pairs = len(left)
    workers = a.workers or os.cpu_count() or 1
    tokens = TokenCache(store, full, a.weighting)
    segmenting = (lambda n, total: progress("segmenting titles", n, total)) if progress else None
    kept = None if full else incremental.load_kept(store, settings)
    contents = _contents(tokens, subs, workers, segmenting) if kept is not None else []
    s_label, s_content, todo = incremental.reuse(subs, left, right, contents, kept)
    at = _positions(subs, left, right, set(reviewed.scores) | set(reviewed.review) | set(reviewed.rename))
    for key, (label, content) in reviewed.scores.items():
        if key in at:
            s_label[at[key]], s_content[at[key]] = label, content
    todo = todo[~np.isin(todo, [at[key] for key in reviewed.scores if key in at])]
    if len(todo):
        new_label, new_content = score_pairs(subs, list(zip(left[todo].tolist(), right[todo].tolist())),
                                             engine=a.engine, weighting=a.weighting, workers=workers,
                                             progress=progress, segment=tokens, known_label=s_label[todo])
        s_label[todo], s_content[todo] = new_label, new_content
    report.n_scored = len(todo)
    if reviewed.scores:
        gone = [key for key in reviewed.scores if key not in at]
        if gone:
            report.problems.append(f"{review}: {len(gone)} pair(s) refer to sub-classes no longer in the store; ignored")

    decided = decide_all(subs, left, right, at, s_label, s_content, settings, reviewed, report)
    groups, group_of = build_groups(subs, decided.merges, decided.touched, decided.renames)
    check_renames(groups, subs, decided.renames, report)
    previous = PreviousIds() if renumber else PreviousIds.from_store(store)
    assign_ids(groups, subs, previous)
    report.n_groups = len(groups)
    report.n_children = sum(len(g.children) for g in groups)

    table = _review_table(subs, left, right, s_label, s_content, decided, level1, groups, group_of)
    label_rows = label_map_rows(inv, level1, groups, group_of)
    with contextlib.ExitStack() as stack:  # the review file is written in a thread (Arrow's CSV writer releases the GIL)
        # derived/align/review.csv of the store: on object storage written locally, uploaded when the block ends
        target = out if out is not None else stack.enter_context(store.staged(REVIEW.rsplit("/", 1)[0])) / "review.csv"
        writing = stack.enter_context(_Background(review_file.write, target, table))  # joined before the upload
        report.review_path = where
        # both or neither: a run killed or fenced between them never leaves one run's taxonomy with another's map
        store.replace_tables({"taxonomy": taxonomy_rows(level1, groups), "label_map": label_rows})
        if kept is None:  # a full run: the content hashes now, from the texts it segmented
            contents = _contents(tokens, subs, workers, segmenting)
        incremental.save_kept(store, settings, subs, left, right, s_label, s_content, contents)
        tokens.save(subs)
        stats.bytes = writing.result()  # before the state: a run killed before it is written runs again
    stats.details["segmented_texts"] = tokens.segmented
    stats.details["segmented_lines"] = tokens.segmented_lines

    _count(stats, inv, label_rows, report)
    hashes = incremental.sub_hashes(subs)
    stats.details["changes"] = incremental.sub_changes(hashes, state)
    run.complete({**cfg.as_dict(settings), "align_run": {
        "mapping": str(path), "review": str(review) if review else None, "review_out": str(where), "renumber": renumber,
        "full": full}}, "ok", subclasses=hashes, summary=_summary(report))
    return report


class _Background:
    """``fn(*args)`` in a thread; :meth:`result` waits for it and returns its value or raises its error."""

    def __init__(self, fn, *args):
        self._value, self._error = None, None
        self._thread = threading.Thread(target=self._run, args=(fn, args), name="align-review", daemon=True)
        self._thread.start()

    def _run(self, fn, args) -> None:
        try:
            self._value = fn(*args)
        except BaseException as exc:  # handed to result()'s caller
            self._error = exc

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self._thread.join()  # on an error too: nothing writes on once the block is left

    def result(self):
        self._thread.join()
        if self._error is not None:
            raise self._error
        return self._value


def _summary(report: AlignReport) -> dict:
    """What a run with nothing new reports again (its counts and what a person must look at)."""
    return {"n_subclasses": report.n_subclasses, "n_groups": report.n_groups, "n_children": report.n_children,
            "n_pairs": report.n_pairs, "merges": dict(report.merges), "overrides": dict(report.overrides),
            "unmapped": [[p, n, c] for (p, n), c in report.unmapped.items()],
            "untitled": [list(k) for k in report.untitled], "problems": report.problems,
            "n_in": report.stats.n_in, "n_out": report.stats.n_out, "failures": dict(report.stats.failures)}


def _unchanged(run: StageRun, report: AlignReport, out: Path) -> AlignReport:
    """Nothing align reads was written since its last complete run: report that run's counts, do nothing."""
    s = run.state.get("summary") or {}
    report.n_subclasses, report.n_groups = s.get("n_subclasses", 0), s.get("n_groups", 0)
    report.n_children, report.n_pairs = s.get("n_children", 0), s.get("n_pairs", 0)
    report.merges, report.overrides = Counter(s.get("merges", {})), Counter(s.get("overrides", {}))
    report.unmapped = {(p, n): c for p, n, c in s.get("unmapped", [])}
    report.untitled = [tuple(k) for k in s.get("untitled", [])]
    report.problems = list(s.get("problems", []))
    report.review_path = out
    run.skip(report.n_subclasses)
    return report


def _contents(tokens, subs, workers, segmenting) -> list[int]:
    """Each sub-class's content hash; ``segmenting(done, total)`` counts the titles (lines) segmented."""
    return tokens.content(subs, workers, segmenting)


def _positions(subs, left: np.ndarray, right: np.ndarray, keys) -> dict:
    """The position among the pairs (``left``, ``right``) of each of ``keys`` (pair keys) that is a pair."""
    if not keys:
        return {}
    index = {s.key: i for i, s in enumerate(subs)}
    keys = [k for k in keys if k[:3] in index and k[3:] in index]
    n = len(subs)
    found = incremental.lookup(left * n + right, np.array([index[k[:3]] * n + index[k[3:]] for k in keys], dtype=np.int64))
    return {k: int(f) for k, f in zip(keys, found) if f >= 0}


def _review_table(subs, left, right, s_label, s_content, decided: Decided, level1, groups, group_of) -> pa.Table:
    """The review file's rows (``review.COLUMNS``) as one Arrow table, every column taken from per-sub-class
    arrays by the pairs' indexes (no row dict per pair), borderline first: by |margin|, then class and
    the two sides' (platform, level-1 name, name), compared as a sub-class's rank in key order."""
    rank = np.empty(len(subs), dtype=np.int64)
    rank[sorted(range(len(subs)), key=lambda i: subs[i].key)] = np.arange(len(subs))
    class_ids = np.array([s.class_id if s.class_id is not None else -1 for s in subs], dtype=np.int64)
    order = np.lexsort((rank[right], rank[left], class_ids[left], np.abs(decided.margin)))
    left, right = left[order], right[order]
    s_label, s_content = s_label[order], s_content[order]
    position = np.empty(len(order), dtype=np.int64)
    position[order] = np.arange(len(order))  # a pair's row in the sorted table
    a, b = pa.array(left), pa.array(right)
    def strings(values) -> pa.Array:  # a per-sub-class string column (a pair never has an unmapped side: "" there)
        return pa.array(["" if v is None else v for v in values], pa.string())

    per_sub = {
        "class_id": pa.array([s.class_id for s in subs], pa.int64()),
        "class_name": strings(level1.classes.get(s.class_id) for s in subs),
        "platform": strings(s.platform for s in subs),
        "level1": strings(s.level1 for s in subs),
        "sub_class": strings(s.name for s in subs),
        "products": pa.array([s.n_products for s in subs], pa.int64()),
        "sub_class_id": pa.array([groups[group_of[i]].sub_id if i in group_of else None for i in range(len(subs))],
                                 pa.int64()),
        "group_name": strings(groups[group_of[i]].name if i in group_of else None for i in range(len(subs))),
    }

    def take(column: pa.Array, rows: pa.Array) -> pa.Array:  # strings as a dictionary over the sub-classes: no copy
        if pa.types.is_string(column.type):
            return pa.DictionaryArray.from_arrays(rows, column)
        return column.take(rows)

    def cells(values: dict[int, str]) -> pa.Array:
        column = np.full(len(left), "", dtype=object)
        for k, v in values.items():
            column[position[k]] = v
        return pa.array(column, pa.string())

    words = pa.array(["keep", "merge"], pa.string())
    columns = {
        "class_id": take(per_sub["class_id"], a), "class_name": take(per_sub["class_name"], a),
        **{f"{c}_{side}": take(per_sub[c], rows) for side, rows in (("a", a), ("b", b))
           for c in ("platform", "level1", "sub_class", "products")},
        "s_label": pa.array(s_label, pa.float64()), "s_content": pa.array(s_content, pa.float64()),
        "decision": words.take(pa.array(decided.merge[order].astype(np.int8))),
        "reason": pa.array(REASONS, pa.string()).take(pa.array(decided.reason[order])),
        "margin": pa.array(decided.margin[order], pa.float64()),
        "review": cells(decided.verdict), "rename": cells(decided.rename),
        "final": words.take(pa.array(decided.final[order].astype(np.int8))),
        "sub_class_id": take(per_sub["sub_class_id"], a), "group_name": take(per_sub["group_name"], a),
    }
    return pa.table({c: columns[c] for c in review_file.COLUMNS})


def _count(stats: StageStats, inv: Inventory, label_rows: list[dict], report: AlignReport) -> None:
    stats.n_in = len(label_rows)
    stats.n_out = sum(1 for r in label_rows if r["class_id"] is not None)
    by_method = Counter(r["method"] for r in label_rows)
    if by_method["unmapped"]:
        stats.fail("unmapped level-1 name", by_method["unmapped"])
    if by_method["empty"]:
        stats.fail("no category path", by_method["empty"])
    if report.problems:
        stats.fail("review file problem", len(report.problems))

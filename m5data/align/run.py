"""The align stage: products -> ``taxonomy`` + ``label_map`` + a review file (a global job).

``run(store, settings, ...)`` is the stage contract; :func:`align` does the work and returns an
:class:`AlignReport` with everything the CLI prints (unmapped level-1 names, sub-classes without
titles, pair counts, problems in a review file).
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from .. import config as cfg
from ..storage import StageStats, changes, record_run
from ..storage.locks import stage_lock
from . import incremental
from . import review as review_file
from .candidates import candidate_pairs, decide, pair_key, score_pairs
from .inventory import Inventory, read_inventory
from .mapping import Level1Mapping
from .merge import PreviousIds, assign_ids, build_groups, label_map_rows, taxonomy_rows
from .similarity import ENGINES, WEIGHTINGS

Progress = Callable[[str, int, int], None]


class AlignError(ValueError):
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


def review_target(s: cfg.Settings, review_out) -> Path | None:
    """Where the review file goes: ``--review-out``, else ``align.review_file``; None: the store's ``REVIEW``."""
    chosen = review_out or s.align.review_file
    return Path(chosen) if chosen else None


def run(store, settings: cfg.Settings, **kwargs) -> StageStats:
    """Stage contract: align the store's products; see :func:`align` for the arguments."""
    return align(store, settings, **kwargs).stats


@stage_lock("align")  # one align per store
def align(store, settings: cfg.Settings, *, mapping: str | Path | None = None, review: str | Path | None = None,
          review_out: str | Path | None = None, renumber: bool = False, full: bool = False,
          progress: Progress | None = None) -> AlignReport:
    """Build the taxonomy and label map from ``products`` and write them and the review file.

    Args:
        mapping: level-1 mapping file (default ``align.mapping``).
        review: a reviewed file to re-apply: its scores are reused and its overrides applied.
        review_out: where to write the new review file (default ``align.review_file``).
        renumber: ignore the ids of the previous alignment (default: keep them stable).
        full: score every pair again (default: reuse the last complete run's scores of pairs whose
            texts are unchanged, and do nothing when no product was written since; ``incremental.py``).
        progress: ``progress(step, done, total)`` callback for long steps.
    """
    check_settings(settings)
    a = settings.align
    path = mapping or a.mapping
    if not path:
        raise AlignError("no level-1 mapping file: pass --mapping FILE or set align.mapping")
    level1 = Level1Mapping.load(path)
    reviewed = review_file.read(review) if review else review_file.Reviewed()
    stats = StageStats("align")
    report = AlignReport(stats, problems=list(reviewed.problems))
    out = review_target(settings, review_out)
    where = out if out is not None else store.where(REVIEW)  # a path, or the object's URL
    marks = changes.watermarks(store, incremental.READS)  # before reading: a later write is seen next time
    state = changes.load_state(store, incremental.STAGE)
    inputs = incremental.inputs(settings, path, review, renumber, out if out is not None else REVIEW)
    written = out.is_file() if out is not None else REVIEW in store.files(REVIEW.rsplit("/", 1)[0])
    if not full and changes.unchanged_since(state, marks, inputs) and written:
        return _unchanged(store, report, state, where)

    inv = read_inventory(store, level1, a.content_chars)
    subs = inv.subclasses
    report.n_subclasses = len(subs)
    report.unmapped = dict(inv.unmapped)
    report.untitled = [s.key for s in subs if s.class_id is not None and not s.text]
    pairs = candidate_pairs(subs)
    keys = [pair_key(subs[i], subs[j]) for i, j in pairs]
    report.n_pairs = len(pairs)
    kept = {} if full else incremental.load_kept(store, settings)
    s_label, s_content, todo = incremental.reuse(subs, pairs, keys, kept)
    for k, key in enumerate(keys):
        if key in reviewed.scores:
            s_label[k], s_content[k] = reviewed.scores[key]
    todo = [k for k in todo if keys[k] not in reviewed.scores]
    tokens = incremental.TokenCache(store, full)
    if todo:
        workers = a.workers or os.cpu_count() or 1
        new_label, new_content = score_pairs(subs, [pairs[k] for k in todo], engine=a.engine, weighting=a.weighting,
                                             workers=workers, progress=progress, segment=tokens,
                                             known_label=[s_label[k] for k in todo])
        for n, k in enumerate(todo):
            s_label[k], s_content[k] = float(new_label[n]), float(new_content[n])
    report.n_scored = len(todo)
    if reviewed.scores:
        gone = set(reviewed.scores) - set(keys)
        if gone:
            report.problems.append(f"{review}: {len(gone)} pair(s) refer to sub-classes no longer in the store; ignored")

    rows, merges, touched, renames = _decide_all(subs, pairs, keys, s_label, s_content, settings, reviewed, report)
    for row in rows:
        row["class_name"] = level1.classes.get(row["class_id"])
    groups, group_of = build_groups(subs, merges, touched, renames)
    _check_renames(groups, subs, renames, report)
    previous = PreviousIds() if renumber else PreviousIds.from_store(store)
    assign_ids(groups, subs, previous)
    report.n_groups = len(groups)
    report.n_children = sum(len(g.children) for g in groups)

    for row, (i, _) in zip(rows, pairs):
        g = groups[group_of[i]]
        row["sub_class_id"], row["group_name"] = g.sub_id, g.name
    label_rows = label_map_rows(inv, level1, groups, group_of)
    if out is not None:
        stats.bytes = review_file.write(out, review_file.sort_rows(rows))
    else:  # derived/align/review.csv of the store (on object storage: written locally, then uploaded)
        with store.staged(REVIEW.rsplit("/", 1)[0]) as folder:
            stats.bytes = review_file.write(folder / "review.csv", review_file.sort_rows(rows))
    report.review_path = where
    store.replace("taxonomy", taxonomy_rows(level1, groups))
    store.replace("label_map", label_rows)

    incremental.save_kept(store, settings, subs, pairs, keys, s_label, s_content)
    tokens.save(subs)
    stats.details["segmented_texts"] = tokens.segmented
    stats.details["segmented_lines"] = tokens.segmented_lines

    _count(stats, inv, label_rows, report)
    stats.details["changes"] = incremental.sub_changes(subs, state)
    record_run(store, stats.finish(), {**cfg.as_dict(settings), "align_run": {
        "mapping": str(path), "review": str(review) if review else None, "review_out": str(where), "renumber": renumber,
        "full": full}})
    changes.save_state(store, incremental.STAGE, marks, inputs, subclasses=incremental.sub_hashes(subs),
                       summary=_summary(report))  # last: a killed run leaves the previous state
    return report


def _summary(report: AlignReport) -> dict:
    """What a run with nothing new reports again (its counts and what a person must look at)."""
    return {"n_subclasses": report.n_subclasses, "n_groups": report.n_groups, "n_children": report.n_children,
            "n_pairs": report.n_pairs, "merges": dict(report.merges), "overrides": dict(report.overrides),
            "unmapped": [[p, n, c] for (p, n), c in report.unmapped.items()],
            "untitled": [list(k) for k in report.untitled], "problems": report.problems,
            "n_in": report.stats.n_in, "n_out": report.stats.n_out, "failures": dict(report.stats.failures)}


def _unchanged(store, report: AlignReport, state: dict, out: Path) -> AlignReport:
    """Nothing align reads was written since its last complete run: report that run's counts, do nothing."""
    s = state.get("summary") or {}
    report.n_subclasses, report.n_groups = s.get("n_subclasses", 0), s.get("n_groups", 0)
    report.n_children, report.n_pairs = s.get("n_children", 0), s.get("n_pairs", 0)
    report.merges, report.overrides = Counter(s.get("merges", {})), Counter(s.get("overrides", {}))
    report.unmapped = {(p, n): c for p, n, c in s.get("unmapped", [])}
    report.untitled = [tuple(k) for k in s.get("untitled", [])]
    report.problems = list(s.get("problems", []))
    report.review_path = out
    report.stats.details["changes"] = {"new": 0, "changed": 0, "unchanged": report.n_subclasses}
    report.stats.details["unchanged"] = True
    record_run(store, report.stats.finish(), {"align_run": {"unchanged": True}})
    return report


def _decide_all(subs, pairs, keys, s_label, s_content, settings, reviewed, report):
    a = settings.align
    rows: list[dict] = []
    merges: list[tuple[int, int]] = []
    touched: set[int] = set()
    renames: dict[int, str] = {}
    for k, (i, j) in enumerate(pairs):
        si, sj = subs[i], subs[j]
        decision, reason, margin = decide(
            s_label[k], s_content[k], si.name == sj.name, label_threshold=a.label_threshold,
            content_threshold=a.content_threshold, merge_empty_by_name=a.merge_empty_by_name)
        verdict = reviewed.review.get(keys[k], "")
        final = {"accept": "merge", "reject": "keep"}.get(verdict, decision)
        if final != decision:
            touched.update((i, j))
            report.overrides[verdict] += 1
        new_name = reviewed.rename.get(keys[k], "")
        if new_name:
            if final == "merge":
                renames.setdefault(i, new_name)
                touched.update((i, j))
            else:
                report.problems.append(f"rename {new_name!r} of {'/'.join(keys[k][:3])} ~ {'/'.join(keys[k][3:])} "
                                       "ignored: the pair is not merged")
        if final == "merge":
            merges.append((i, j))
            report.merges[reason if final == decision else "review"] += 1
        rows.append({
            "class_id": si.class_id, "platform_a": si.platform, "level1_a": si.level1,
            "sub_class_a": si.name, "products_a": si.n_products, "platform_b": sj.platform,
            "level1_b": sj.level1, "sub_class_b": sj.name, "products_b": sj.n_products,
            "s_label": s_label[k], "s_content": s_content[k], "decision": decision, "reason": reason,
            "margin": margin, "review": verdict, "rename": new_name, "final": final,
        })
    return rows, merges, touched, renames


def _check_renames(groups, subs, renames, report) -> None:
    for g in groups:
        asked = {renames[i] for i in g.members if i in renames}
        if len(asked) > 1:
            report.problems.append(f"conflicting renames for one merged group ({', '.join(sorted(asked))}); "
                                   f"kept {g.name!r}")
        if asked:
            report.overrides["rename"] += 1


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

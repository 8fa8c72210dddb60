"""Candidate sub-class pairs, their S_label and S_content, and the automatic merge decision.

Candidates are every pair of sub-classes from *different* platforms under the same unified class,
plus pairs of identically named sub-classes of one platform that sit under two raw level-1 names
mapped to the same class. Pairs never cross unified classes, so no merge can.

Decision (MEP-3M eq. 3, thresholds from ``[align]``):

* ``identical``: the names are equal -> merge (MEP-3M merges 洗澡用具/洗澡用具 at S_content 0.705);
* ``thresholds``: S_label >= label_threshold AND S_content > content_threshold -> merge;
* ``below-label`` / ``below-content`` / ``below-both`` -> keep apart;
* ``no-content``: a side has no titles, so S_content is unknown -> keep apart, unless the names are
  equal and ``align.merge_empty_by_name`` is true (reason ``identical-no-content``).

``margin`` measures how far a pair is from the other decision (0 = on the boundary); the review
file lists pairs by ``|margin|`` so that a person sees the borderline ones first.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np

from .inventory import SubClass
from .similarity import ContentVectors, label_similarity, simtext_similarity

PairKey = tuple[str, str, str, str, str, str]  # platform_a, level1_a, name_a, platform_b, level1_b, name_b
_NO_CONTENT_FAR = 1.0  # margin offset that sends no-content pairs with unlike names to the end


def pair_key(a: SubClass, b: SubClass) -> PairKey:
    return (*a.key, *b.key)


def candidate_pairs(subclasses: list[SubClass]) -> list[tuple[int, int]]:
    """Index pairs (a, b) of candidate sub-classes, a's platform first in sorted order."""
    left, right = candidate_arrays(subclasses)
    return list(zip(left.tolist(), right.tolist()))


def candidate_arrays(subclasses: list[SubClass]) -> tuple[np.ndarray, np.ndarray]:
    """:func:`candidate_pairs` as two int64 arrays (left, right), in the same order."""
    by_class: dict[int, dict[str, list[int]]] = {}
    for i, sub in enumerate(subclasses):
        if sub.class_id is not None:
            by_class.setdefault(sub.class_id, {}).setdefault(sub.platform, []).append(i)
    lefts: list[np.ndarray] = []
    rights: list[np.ndarray] = []
    for cid in sorted(by_class):
        platforms = sorted(by_class[cid])
        for pi, p in enumerate(platforms):
            left = np.asarray(by_class[cid][p], dtype=np.int64)
            for q in platforms[pi + 1:]:  # every (a, b), a-major: a's pairs together, b in order
                right = np.asarray(by_class[cid][q], dtype=np.int64)
                lefts.append(np.repeat(left, len(right)))
                rights.append(np.tile(right, len(left)))
            by_name: dict[str, list[int]] = {}
            for i in left.tolist():
                by_name.setdefault(subclasses[i].name, []).append(i)
            for same in by_name.values():  # one platform, two level-1 names, one class, one name
                if len(same) > 1:
                    lefts.append(np.full(len(same) - 1, same[0], dtype=np.int64))
                    rights.append(np.asarray(same[1:], dtype=np.int64))
    if not lefts:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    return np.concatenate(lefts), np.concatenate(rights)


def score_pairs(
    subclasses: list[SubClass],
    pairs: list[tuple[int, int]],
    *,
    engine: str = "bulk",
    weighting: str = "binary",
    workers: int = 1,
    progress: Callable[[str, int, int], None] | None = None,
    segment=None,
    known_label: Sequence[float] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """S_label and S_content (NaN where a side has no titles) of each pair (``segment``: see ContentVectors);
    ``known_label``: S_label already known per pair (NaN: compute it)."""
    s_label = np.array([label_similarity(subclasses[a].name, subclasses[b].name)
                        if known_label is None or math.isnan(known_label[k]) else known_label[k]
                        for k, (a, b) in enumerate(pairs)], dtype=np.float64)
    s_content = np.full(len(pairs), np.nan)
    texted = [k for k, (a, b) in enumerate(pairs) if subclasses[a].text and subclasses[b].text]
    if not texted:
        return s_label, s_content
    if engine == "simtext":
        if weighting != "binary":
            raise ValueError("engine simtext computes binary presence vectors only; use --weighting binary")
        for done, k in enumerate(texted, 1):
            a, b = pairs[k]
            s_content[k] = simtext_similarity(subclasses[a].text, subclasses[b].text)
            if progress:
                progress("simtext pairs", done, len(texted))
        return s_label, s_content
    if engine != "bulk":
        raise ValueError(f"engine must be bulk or simtext, not {engine!r}")
    rows = sorted({i for k in texted for i in pairs[k]})
    local = {i: r for r, i in enumerate(rows)}
    vectors = ContentVectors(
        [subclasses[i].text for i in rows], weighting, workers,
        (lambda n, total: progress("segmenting titles", n, total)) if progress else None, segment=segment,
    )
    # One sparse product per (class, platform a, platform b) block: rows gathered once per block,
    # never once per pair (a pair-wise gather of 160k pairs x ~2,000 terms would not fit in memory).
    blocks: dict[tuple, list[int]] = {}
    for k in texted:
        a, b = pairs[k]
        blocks.setdefault((subclasses[a].class_id, subclasses[a].platform, subclasses[b].platform), []).append(k)
    done = 0
    for ks in blocks.values():
        left = sorted({local[pairs[k][0]] for k in ks})
        right = sorted({local[pairs[k][1]] for k in ks})
        li = {r: n for n, r in enumerate(left)}
        ri = {r: n for n, r in enumerate(right)}
        block = vectors.block(left, right)
        for k in ks:
            s_content[k] = block[li[local[pairs[k][0]]], ri[local[pairs[k][1]]]]
        done += len(ks)
        if progress:
            progress("cosines", done, len(texted))
    return s_label, s_content


def decide(s_label: float, s_content: float | None, same_name: bool, *, label_threshold: float,
           content_threshold: float, merge_empty_by_name: bool = False) -> tuple[str, str, float]:
    """The automatic decision of one pair: (``merge``|``keep``, reason, margin)."""
    no_content = s_content is None or (isinstance(s_content, float) and math.isnan(s_content))
    if no_content:
        if same_name and merge_empty_by_name:
            return "merge", "identical-no-content", 0.0
        if s_label >= label_threshold:
            return "keep", "no-content", 0.0
        return "keep", "no-content", -(_NO_CONTENT_FAR + label_threshold - s_label)
    dl = s_label - label_threshold
    dc = s_content - content_threshold
    if same_name:
        return "merge", "identical", dc
    if dl >= 0 and dc > 0:
        return "merge", "thresholds", min(dl, dc)
    reason = "below-both" if dl < 0 and dc <= 0 else ("below-label" if dl < 0 else "below-content")
    return "keep", reason, -(max(0.0, -dl) + max(0.0, -dc))


REASONS = ("identical", "identical-no-content", "thresholds", "below-label", "below-content", "below-both", "no-content")


def decide_arrays(s_label: np.ndarray, s_content: np.ndarray, same_name: np.ndarray, *, label_threshold: float,
                  content_threshold: float, merge_empty_by_name: bool = False
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """:func:`decide` of many pairs at once (NaN S_content = no content): (merge?, index into
    :data:`REASONS`, margin), each value exactly what :func:`decide` gives (the same float operations,
    and Python's ``max(0.0, x)`` / ``min(a, b)`` tie rules)."""
    s_label = np.asarray(s_label, dtype=np.float64)
    s_content = np.asarray(s_content, dtype=np.float64)
    same_name = np.asarray(same_name, dtype=bool)
    code = {r: n for n, r in enumerate(REASONS)}
    no_content = np.isnan(s_content)
    with np.errstate(invalid="ignore"):
        dl = s_label - label_threshold
        dc = s_content - content_threshold
        passes = (dl >= 0) & (dc > 0)
        short_l, short_c = -dl, -dc
        keep_margin = -(np.where(short_l > 0.0, short_l, 0.0) + np.where(short_c > 0.0, short_c, 0.0))
        below = np.where((dl < 0) & (dc <= 0), code["below-both"], np.where(dl < 0, code["below-label"], code["below-content"]))
        far = -(_NO_CONTENT_FAR + label_threshold - s_label)
        empty_margin = np.where(s_label >= label_threshold, 0.0, far)
    merge_empty = no_content & same_name & bool(merge_empty_by_name)
    merge = np.where(no_content, merge_empty, same_name | passes)
    reason = np.where(no_content, np.where(merge_empty, code["identical-no-content"], code["no-content"]),
                      np.where(same_name, code["identical"], np.where(passes, code["thresholds"], below)))
    margin = np.where(no_content, np.where(merge_empty, 0.0, empty_margin),
                      np.where(same_name, dc, np.where(passes, np.where(dc < dl, dc, dl), keep_margin)))
    return merge.astype(bool), reason.astype(np.int8), margin.astype(np.float64)

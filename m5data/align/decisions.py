"""Every candidate pair's decision: the automatic one (merge or keep, and why), then the review file's
overrides (accept / reject / rename) applied pair by pair, counted in the align report."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .candidates import REASONS, decide_arrays


@dataclass
class Decided:
    """Every pair's automatic decision (arrays over the pairs) and what the review file changed."""

    merge: np.ndarray  # bool: the automatic decision is merge
    reason: np.ndarray  # int8: index into candidates.REASONS
    margin: np.ndarray
    final: np.ndarray  # bool: the decision applied
    verdict: dict[int, str]  # pair position -> the review file's accept / reject
    rename: dict[int, str]  # pair position -> the review file's name
    merges: list[tuple[int, int]]
    touched: set[int]
    renames: dict[int, str]


def decide_all(subs, left, right, at, s_label, s_content, settings, reviewed, report) -> Decided:
    """Decide every pair at once (numpy), then apply the review file's overrides pair by pair, in pair order."""
    a = settings.align
    names = np.array([s.name for s in subs], dtype=object)
    merge, reason, margin = decide_arrays(
        s_label, s_content, names[left] == names[right], label_threshold=a.label_threshold,
        content_threshold=a.content_threshold, merge_empty_by_name=a.merge_empty_by_name)
    final = merge.copy()
    verdicts: dict[int, str] = {}
    new_names: dict[int, str] = {}
    touched: set[int] = set()
    renames: dict[int, str] = {}
    for key, k in sorted(((key, k) for key, k in at.items() if key in reviewed.review or key in reviewed.rename),
                         key=lambda kv: kv[1]):
        i, j = int(left[k]), int(right[k])
        decision = "merge" if merge[k] else "keep"
        verdict = reviewed.review.get(key, "")
        chosen = {"accept": "merge", "reject": "keep"}.get(verdict, decision)
        if verdict:
            verdicts[k] = verdict
        if chosen != decision:
            touched.update((i, j))
            report.overrides[verdict] += 1
            final[k] = chosen == "merge"
        new_name = reviewed.rename.get(key, "")
        if new_name:
            new_names[k] = new_name
            if chosen == "merge":
                renames.setdefault(i, new_name)
                touched.update((i, j))
            else:
                report.problems.append(f"rename {new_name!r} of {'/'.join(key[:3])} ~ {'/'.join(key[3:])} "
                                       "ignored: the pair is not merged")
    merged = np.flatnonzero(final)
    # merged pairs by reason ("review" where the review file changed the decision), counted in order of each
    # one's first pair, as a loop over the pairs would
    labels = np.where(merge[merged] != final[merged], len(REASONS), reason[merged])
    codes, first, counts = np.unique(labels, return_index=True, return_counts=True)
    for _, code, n in sorted(zip(first.tolist(), codes.tolist(), counts.tolist())):
        report.merges[REASONS[code] if code < len(REASONS) else "review"] += n
    return Decided(merge, reason, margin, final, verdicts, new_names,
                   list(zip(left[merged].tolist(), right[merged].tolist())), touched, renames)


def check_renames(groups, subs, renames, report) -> None:
    """Count the renames applied to merged groups; a group asked for two names is a problem (the kept name wins)."""
    for g in groups:
        asked = {renames[i] for i in g.members if i in renames}
        if len(asked) > 1:
            report.problems.append(f"conflicting renames for one merged group ({', '.join(sorted(asked))}); "
                                   f"kept {g.name!r}")
        if asked:
            report.overrides["rename"] += 1

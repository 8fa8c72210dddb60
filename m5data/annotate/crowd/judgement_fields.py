"""What the fields of a crowd judgement mean: labels from their usual spellings, gold flags and the
worker ids the store keeps for itself (``@gold`` and every id starting with ``@``) or refuses.

Used by the judgements import (:mod:`.crowd`), the labelling UI and simulate; no I/O.
"""

from __future__ import annotations

import unicodedata

GOLD_WORKER = "@gold"
MAX_ID = 1024  # characters of a query, candidate or worker id: longer is not an id
LABELS = ("match", "mismatch", "uncertain")
_SYNONYMS = {
    "match": "match", "matched": "match", "1": "match", "yes": "match", "true": "match", "same": "match",
    "mismatch": "mismatch", "mismatched": "mismatch", "not matched": "mismatch", "not_matched": "mismatch",
    "0": "mismatch", "no": "mismatch", "false": "mismatch", "different": "mismatch",
    "uncertain": "uncertain", "unsure": "uncertain", "?": "uncertain", "skip": "uncertain",
}


def normalise_label(value) -> str | None:
    """match / mismatch / uncertain from the usual spellings; None when it is none of them."""
    if isinstance(value, bool):
        return "match" if value else "mismatch"
    return _SYNONYMS.get(str(value if value is not None else "").strip().lower())


def _invisible(ch: str) -> bool:
    """Unicode "other" characters (Cc control, Cf format, Cs surrogate, Co private use, Cn unassigned):
    nothing a reader sees, so a NUL, a zero-width space or a right-to-left override."""
    return unicodedata.category(ch)[0] == "C"


def is_reserved_worker(worker_id: str) -> bool:
    """True for worker ids the store keeps for itself: ``@gold`` and anything else starting with ``@``
    (compared after NFKC folding, dropping invisible characters and stripping, so ``@GOLD``, ``＠gold``
    and ``\u200b@gold`` are reserved too)."""
    folded = unicodedata.normalize("NFKC", str(worker_id))
    return "".join(ch for ch in folded if not _invisible(ch)).strip().startswith("@")


def worker_id_problem(worker_id: str) -> str | None:
    """Why ``worker_id`` cannot name a worker (reserved, or holding invisible characters), or None.

    An id with a control or format character would show as another worker's id ("w\u200b1" as "w1")
    in every table and chart, so it is refused rather than cleaned: the file's author decides.
    """
    if is_reserved_worker(worker_id):
        return (f"reserved worker_id: ids starting with @ belong to the store "
                f"({GOLD_WORKER} holds the gold answers a file gives in its gold_label column)")
    bad = sorted({f"U+{ord(ch):04X}" for ch in str(worker_id) if _invisible(ch)})
    if bad:
        return f"worker_id holds control or format characters ({', '.join(bad[:5])})"
    return None


def truthy(value) -> bool | None:
    """True / False from the usual spellings of a flag (empty is False); None when it is none of them."""
    if isinstance(value, bool):
        return value
    text = str(value if value is not None else "").strip().lower()
    if text in ("", "0", "false", "no", "f", "n"):
        return False
    if text in ("1", "true", "yes", "t", "y"):
        return True
    return None

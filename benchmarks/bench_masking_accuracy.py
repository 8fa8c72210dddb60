"""Precision and recall of personal-data masking (``m5data.masking.mask_text``) on a labelled set.

    python benchmarks/bench_masking_accuracy.py [--data benchmarks/data/masking/labelled.jsonl] [--before REV]

The set (benchmarks/data/masking/labelled.jsonl, one JSON object a line) holds realistic strings of
both kinds: personal data (``personal``: true) in every form the masking must catch, with the
substrings that must not survive (``secrets``) and those that must (``keep``), and product text that
must be left as it is (model, batch, serial and barcode numbers, prices, sizes, dates, spec values,
standard numbers). Scored per string: a personal string is found when no secret survives; a
product string changed, or a personal string losing a ``keep``, is a false positive. Printed for
today's code and for ``m5data/masking.py`` at ``--before`` (a git revision; the rules before
issue 76's masking work by default), overall and per category.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import types
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "benchmarks" / "data" / "masking" / "labelled.jsonl"
BEFORE = "1090948"  # masking.py before issue 76's masking rules (the linear contact pattern)


def load(path: Path = DATA) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def score(rows: list[dict], mask) -> dict:
    """``{"overall"|category: {"tp", "fn", "fp", "n"}}`` and precision/recall for each."""
    out: dict = defaultdict(lambda: {"tp": 0, "fn": 0, "fp": 0, "n": 0, "misses": []})
    for row in rows:
        masked = mask(row["text"])[0]
        for key in ("overall", row["category"]):
            c = out[key]
            c["n"] += 1
            if row["personal"]:
                if any(s in masked for s in row["secrets"]):
                    c["fn"] += 1
                    c["misses"].append(row["text"])
                else:
                    c["tp"] += 1
                if any(k not in masked for k in row.get("keep", [])):
                    c["fp"] += 1
                    c["misses"].append(row["text"])
            elif masked != row["text"]:
                c["fp"] += 1
                c["misses"].append(row["text"])
    for c in out.values():
        c["precision"] = c["tp"] / (c["tp"] + c["fp"]) if c["tp"] + c["fp"] else 1.0
        c["recall"] = c["tp"] / (c["tp"] + c["fn"]) if c["tp"] + c["fn"] else 1.0
    return dict(out)


def old_mask(rev: str):
    """``mask_text`` of m5data/masking.py at git revision ``rev`` (a module of its own)."""
    source = subprocess.run(["git", "show", f"{rev}:m5data/masking.py"], cwd=ROOT, capture_output=True, text=True,
                            check=True).stdout
    module = types.ModuleType("masking_before")
    exec(compile(source, f"masking@{rev}", "exec"), module.__dict__)
    return module.mask_text


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=DATA)
    ap.add_argument("--before", default=BEFORE, help="git revision to compare with ('' for none)")
    ap.add_argument("--misses", action="store_true", help="print the strings each scores wrong")
    args = ap.parse_args()
    sys.path.insert(0, str(ROOT))
    from m5data.masking import mask_text

    rows = load(args.data)
    runs = {"after": score(rows, mask_text)}
    if args.before:
        runs = {"before": score(rows, old_mask(args.before)), **runs}
    kinds = sum(r["personal"] for r in rows)
    print(f"{len(rows)} strings: {kinds} personal data, {len(rows) - kinds} product text")
    print(f"{'category':<14} {'n':>4}" + "".join(f" {name + ' P':>9} {name + ' R':>9} {'fp':>3} {'fn':>3}"
                                                 for name in runs))
    for cat in ["overall", *sorted({r["category"] for r in rows})]:
        line = f"{cat:<14} {runs['after'][cat]['n']:>4}"
        for got in runs.values():
            c = got[cat]
            line += f" {c['precision']:>9.3f} {c['recall']:>9.3f} {c['fp']:>3} {c['fn']:>3}"
        print(line)
    if args.misses:
        for name, got in runs.items():
            print(f"\n{name}: wrong on", *got["overall"]["misses"], sep="\n  ")


if __name__ == "__main__":
    main()

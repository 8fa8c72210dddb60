"""Concepts with one home each (issue 77): a product's main image (storage/main_image.py), the making
of a media row's id (storage/media_ids.py) and the run fingerprint (stage_run.py). Grep-level: no second
definition anywhere in m5data/."""

import re
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "m5data"


def _sources():
    for path in sorted(PACKAGE.rglob("*.py")):
        yield path.relative_to(PACKAGE).as_posix(), path.read_text(encoding="utf-8")


def _found(pattern: str) -> set[str]:
    rx = re.compile(pattern)
    return {rel for rel, text in _sources() if rx.search(text)}


def test_the_main_image_is_defined_once():
    # SQL saying which media row is a main image (role compared with 'main', or a null role taken as one)
    # (not an HTML attribute: the crawler's XPath ``@role='main'`` is a page's ARIA landmark)
    sql = r"""(?<![@\w])role\s*(=|<>|!=|IS( NOT)? DISTINCT FROM)\s*'main'|coalesce\(\s*\w*\.?role\b|CASE\s+\w*\.?role\s+WHEN\s+'main'"""
    assert _found(sql) == {"storage/main_image.py"}
    # and the same in Python or Arrow
    assert _found(r"""role["')\]]*\s*[!=]=\s*["']main["']|equal\([^)]*"role"\)\s*,\s*"main\"""") == {"storage/main_image.py"}


def test_a_media_id_is_made_once():
    made = r"""sha1\(f["'][^"']*\{kind\}"""  # sha1 of "...|{kind}|..." or "{source}|{kind}"
    assert _found(made) == {"storage/media_ids.py"}
    defs = {rel for rel, text in _sources() if re.search(r"(?m)^def (media_id|derived_id|imported_media_id)\(", text)}
    assert defs == {"storage/media_ids.py"}


def test_one_function_is_named_fingerprint():
    defs = {rel for rel, text in _sources() if re.search(r"(?m)^\s*def fingerprint\(", text)}
    assert defs == {"stage_run.py"}  # stages.py re-exports it

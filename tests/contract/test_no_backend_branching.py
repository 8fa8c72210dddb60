"""No module outside ``m5data/storage/`` asks which backend its store is (issue 77): what a stage needs of
one (its folder or none, a blob's bytes, the parts written since a watermark, its parts as local files,
a blob put) is an operation of the store Protocol, and a location string's folder is
``storage.location.local_folder``. No module takes a store's ``root`` for its folder (``local_root()``)."""

import re
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "m5data"

# a store's backend asked: its class, its root's type, a location's scheme
BRANCHES = re.compile(r"isinstance\([^)]*S3Store|is_store_url|isinstance\([^)]*root, (Path|str)\)|\.objects\.(put|get)\(")

ALLOWED: set[str] = set()  # none: every module asks the store


def branches() -> dict[str, list[str]]:
    found = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE).as_posix()
        if rel.startswith("storage/"):
            continue
        lines = [f"{i}: {line.strip()}" for i, line in enumerate(path.read_text().splitlines(), 1) if BRANCHES.search(line)]
        if lines:
            found[rel] = lines
    return found


def test_no_module_outside_storage_branches_on_the_backend():
    found = {rel: lines for rel, lines in branches().items() if rel not in ALLOWED}
    assert found == {}, "ask the store (storage/protocol.py) or storage.location instead: " + repr(found)


def test_the_pattern_finds_a_branch():
    for line in ("if isinstance(store, S3Store):", "if is_store_url(path):", "x = isinstance(store.root, Path)",
                 "remote = isinstance(store.root, str)", "store.objects.put(rel, data, if_absent=True)"):
        assert BRANCHES.search(line), line
    assert not BRANCHES.search("folder = store.local_root()")


# a store's root used as a folder: a path operation on it (its type is location.Location, text, on both backends)
ROOT_AS_FOLDER = re.compile(r"store\.root\s*/|store\.root\.[a-z_]+\(")


def test_no_module_takes_a_stores_root_for_its_folder():
    """A folder store's ``root`` still answers path operations (for scripts and tests written when it was a
    Path), but the package, storage/ too, asks ``store.local_root()`` for the folder (None on object storage)."""
    found = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE).as_posix()
        lines = [f"{i}: {line.strip()}" for i, line in enumerate(path.read_text().splitlines(), 1) if ROOT_AS_FOLDER.search(line)]
        if lines:
            found[rel] = lines
    assert found == {}, "ask store.local_root() for the folder: " + repr(found)
    assert ROOT_AS_FOLDER.search('folder = store.root / "derived"') and ROOT_AS_FOLDER.search("store.root.exists()")
    assert not ROOT_AS_FOLDER.search("print(f'store {store.root}')")

"""The package's modules import each other one way: no two modules (nor a longer loop) import each
other, at module level or inside a function. A loop is a shared name (an exception class, a
constant, a config type) living in the wrong module."""

from __future__ import annotations

import ast
import re
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "m5data"


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path, modules: set[str]) -> set[str]:
    """The package modules ``path`` imports (``from .x import y`` counts ``x``, or ``x.y`` when that is a module)."""
    name = _module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    tree = ast.parse(path.read_text(), str(path))
    typing_only = {id(n) for block in ast.walk(tree) if isinstance(block, ast.If) and _is_type_checking(block.test)
                   for n in ast.walk(block)}
    for node in ast.walk(tree):
        if id(node) in typing_only:  # ``if TYPE_CHECKING:`` imports are types for annotations, never run
            continue
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            for alias in node.names:
                sub = f"{target}.{alias.name}"
                found.add(sub if sub in modules else target)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return {m for m in found if m in modules and m != name}


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or \
        (isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _graph() -> dict[str, set[str]]:
    files = [p for p in PACKAGE.rglob("*.py")]
    modules = {_module_name(p) for p in files}
    return {_module_name(p): {m for m in _imports(p, modules) if not _is_package_of(m, _module_name(p))}
            for p in files}


def _is_package_of(candidate: str, module: str) -> bool:
    """A module importing its own package's ``__init__`` (re-exports) is not a loop between two modules."""
    return module.startswith(candidate + ".")


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index, low, stack, on, out, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def test_the_graph_is_read():
    graph = _graph()
    assert "m5data.storage.store" in graph["m5data.cli"] or any(m.startswith("m5data.storage") for m in graph["m5data.cli"])
    assert "m5data.demo.entities" in graph["m5data.demo.faults"]


def test_no_modules_import_each_other():
    assert _cycles(_graph()) == []


def test_only_the_entry_point_imports_the_cli():
    """The verbs' shared services are in m5data.verbs: a stage importing m5data.cli climbs back up to the
    module that mounts it (and, at module level, would be a loop the mounting hides)."""
    graph = _graph()
    importers = sorted(m for m, deps in graph.items() if "m5data.cli" in deps)
    assert importers == ["m5data.__main__"]


def test_every_stage_is_declared_once_and_has_no_wrapper_in_flows():
    """The registry names each stage's run and verbs; the flow has no per-stage module of its own."""
    from m5data import stages

    names = [s.name for s in stages.REGISTRY]
    assert len(names) == len(set(names))
    for stage in stages.REGISTRY:
        assert callable(stage.load()), stage.name
        assert not (PACKAGE / "flows" / f"{stage.name}.py").exists(), stage.name
    verbs = [v.name for v in stages.verbs()]
    assert len(verbs) == len(set(verbs))
    graph = _graph()
    assert not any(m.startswith("m5data.flows") for m in graph["m5data.stages"])  # the registry is below the flow


def test_every_module_is_used_by_the_package():
    """A module of m5data that no other module imports, and that no module names (a registry target,
    a Scrapy setting, ``python -m``), serves only tests or benchmarks: it belongs in tests/support/."""
    graph = _graph()
    imported = {m for deps in graph.values() for m in deps}
    named = set()
    for path in PACKAGE.rglob("*.py"):
        for name in re.findall(r"m5data(?:\.\w+)+", path.read_text()):
            named.update({name, name.rpartition(".")[0]})  # "module:function" or a dotted attribute
    used = imported | named
    orphans = sorted(m for m in graph if m not in used and m not in ("m5data", "m5data.__main__")
                     and not any(u.startswith(m + ".") for u in used))  # a package is used through its modules
    assert orphans == []


def _private_imports(path: Path) -> list[str]:
    """The private names (``_x``, not dunders) ``path`` imports from another module: ``module:name``."""
    tree = ast.parse(path.read_text(), str(path))
    return [f"{node.module or '.'}:{alias.name}" for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)
            for alias in node.names if alias.name.startswith("_") and not alias.name.startswith("__")]


def test_store_modules_import_no_private_names_of_each_other():
    """What one storage module uses of another is its public API (views.py's SQL helpers, which S3Store
    uses, included): a private name is the module's own."""
    found = {p.name: names for p in sorted((PACKAGE / "storage").glob("*.py")) if (names := _private_imports(p))}
    assert found == {}


BOTTOM = "m5data.errors"  # the error hierarchy, below everything: it imports nothing of the package


def test_storage_imports_nothing_above_it():
    """``storage/`` is the bottom layer: the stages, verbs and flows import it, never the other way (its
    verbs live in m5data/tools/, the redaction rule it applies to every file it writes in storage/). Only the
    error hierarchy is below it, and it imports nothing of the package."""
    graph = _graph()
    above = {m: sorted(d for d in deps if not d.startswith("m5data.storage") and d != BOTTOM)
             for m, deps in graph.items() if m.startswith("m5data.storage")}
    assert {m: deps for m, deps in above.items() if deps} == {}
    assert graph[BOTTOM] == set()
    assert BOTTOM in graph["m5data.storage.errors"]  # StoreError is a UserError


CURATION = ("dedup", "match_level", "pools", "crowd", "matcher")  # the curation stages' packages under annotate/
KERNELS = "m5data.annotate.kernels"  # what pools, match_level and the matcher's text embeddings compute with
# What a curation package lets another import, and why; nothing else of it crosses (docs/architecture.md).
PUBLISHED = {
    "dedup": {  # products as dedup reads them and its pHash: the matcher's cascade is dedup's first test
        "to": {"matcher"}, "modules": {"reads", "near", "phash", "values"}},
    "matcher": {  # the trained model as data: dedup applies it, the crowd's active learning scores with it
        "to": {"dedup", "crowd"}, "modules": {"model", "features", "products", "spaces", "labels", "trees"}},
}


def test_curation_packages_cross_only_through_what_they_publish():
    """Each curation stage is a package of its own (its job, stage, verbs, and the kernels only it runs). One
    package imports another's modules only where :data:`PUBLISHED` says so (the matcher's model, dedup's
    reads), and ``annotate/kernels/`` imports none of them. Modules never import each other in a loop
    (:func:`test_no_modules_import_each_other`), so dedup applying the model and the model reading dedup's
    inputs are two one-way edges between different modules."""
    graph = _graph()
    packages = {f"m5data.annotate.{name}" for name in CURATION}
    for package in packages:
        assert f"{package}.stage" in graph, package  # its registry entry's run

    def allowed(mine: str, theirs: str, module: str) -> bool:
        rule = PUBLISHED.get(theirs.rsplit(".", 1)[1])
        return mine != KERNELS and rule is not None and mine.rsplit(".", 1)[1] in rule["to"] \
            and module[len(theirs) + 1:].split(".")[0] in rule["modules"]

    crossing = sorted(f"{m} -> {d}" for m, deps in graph.items() for d in deps
                      for mine in packages | {KERNELS} if m.startswith(mine + ".") or m == mine
                      for theirs in packages if theirs != mine and (d == theirs or d.startswith(theirs + "."))
                      if not allowed(mine, theirs, d))
    assert crossing == []
    used = {(m.split(".")[2], d.split(".")[3]) for m, deps in graph.items() for d in deps
            if m.startswith("m5data.annotate.") and d.startswith("m5data.annotate.") and len(d.split(".")) > 3
            and m.split(".")[2] != d.split(".")[2] and d.split(".")[2] in PUBLISHED}
    published = {(to, module) for rule in PUBLISHED.values() for to in rule["to"] for module in rule["modules"]}
    assert {module for _, module in published} <= {module for _, module in used}  # none published in vain


def test_every_module_imports():
    """A module moved to another package imports what it names from where it is now (a relative import that
    no longer resolves fails only when the module is first used)."""
    import importlib
    import pkgutil

    import m5data

    failed = {}
    for info in pkgutil.walk_packages(m5data.__path__, "m5data."):
        if info.name.endswith("__main__"):  # the entry point runs the CLI
            continue
        try:
            importlib.import_module(info.name)
        except Exception as exc:  # noqa: BLE001 - every failure is listed
            failed[info.name] = repr(exc)[:200]
    assert failed == {}


def test_the_install_step_warms_kernels_that_exist():
    """``python -m m5data.warm`` (make setup) names each kernel family's warm-up: each one exists."""
    import importlib

    from m5data.warm import KERNELS

    for what, module, function in KERNELS:
        assert callable(getattr(importlib.import_module(module), function)), what

"""A stage reads its own settings section only (issue 77, 4): the code of every stage package (the package of
each registered stage's ``run``) reads no other registered stage's section, and writes into no section.

A value two stages must agree on lives in a shared section (``config.SHARED_SECTIONS``: ``[http]``,
``[text]``, ``[faces]``, ``[review]``, ``[annotate]``, ``[store]``); what one stage needs of another's work it
reads from what that stage recorded (its runs row, its model file), never from that stage's settings.
A grep-level check: an AST walk that finds

- ``<x>.settings.<section>`` / ``settings.<section>`` and ``s.<section>`` where ``s`` is a parameter
  annotated ``Settings`` (or a name bound to ``<x>.settings``),
- ``getattr(settings, "<section>")``,
- ``as_dict(...)["<section>"]`` and ``d["<section>"]`` of a name bound to ``as_dict(...)``,

for ``<section>`` another registered stage's section; and any assignment to ``<settings>.<section>.<field>``.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from m5data import config as cfg
from m5data.stages import REGISTRY

ROOT = Path(__file__).resolve().parents[2]
SECTIONS = {s.section for s in REGISTRY}


def _package(stage) -> Path:
    return ROOT.joinpath(*stage.run.split(":")[0].split(".")[:-1])


def _settings_names(tree: ast.AST) -> set[str]:
    """Names that hold a Settings object in this module: ``settings``, a parameter annotated ``Settings``
    (``cfg.Settings``), a name bound to ``<x>.settings``."""
    names = {"settings"}
    for node in ast.walk(tree):
        if isinstance(node, ast.arg) and node.annotation is not None:
            ann = node.annotation
            if (isinstance(ann, ast.Name) and ann.id == "Settings") or (isinstance(ann, ast.Attribute) and ann.attr == "Settings") \
                    or (isinstance(ann, ast.Constant) and str(ann.value).endswith("Settings") and "." not in str(ann.value).replace("cfg.", "")):
                names.add(node.arg)
        if isinstance(node, ast.Assign) and isinstance(node.value, ast.Attribute) and node.value.attr == "settings":
            names.update(t.id for t in node.targets if isinstance(t, ast.Name))
    return names


def _is_as_dict(node: ast.AST) -> bool:
    return isinstance(node, ast.Call) and (
        (isinstance(node.func, ast.Name) and node.func.id == "as_dict")
        or (isinstance(node.func, ast.Attribute) and node.func.attr == "as_dict"))


def findings(path: Path, own: str) -> list[str]:
    """What of ``path`` (a module of the stage whose section is ``own``) reads another stage's section or
    writes into a section, one ``file:line what`` each."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    others = SECTIONS - {own} - set(cfg.SHARED_SECTIONS)
    names = _settings_names(tree)
    dicts = {t.id for node in ast.walk(tree) if isinstance(node, ast.Assign) and _is_as_dict(node.value)
             for t in node.targets if isinstance(t, ast.Name)}

    def is_settings(node: ast.AST) -> bool:
        return (isinstance(node, ast.Name) and node.id in names) or (isinstance(node, ast.Attribute) and node.attr == "settings")

    out: list[tuple[int, str]] = []
    where = path.relative_to(ROOT) if path.is_relative_to(ROOT) else path.name
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and node.attr in others and is_settings(node.value):
            out.append((node.lineno, f"{where}:{node.lineno} reads [{node.attr}]"))
        elif isinstance(node, ast.Subscript) and isinstance(node.slice, ast.Constant) and node.slice.value in others \
                and (_is_as_dict(node.value) or (isinstance(node.value, ast.Name) and node.value.id in dicts)):
            out.append((node.lineno, f"{where}:{node.lineno} reads [{node.slice.value}] of as_dict"))
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "getattr" \
                and len(node.args) >= 2 and is_settings(node.args[0]) and isinstance(node.args[1], ast.Constant) \
                and node.args[1].value in others:
            out.append((node.lineno, f"{where}:{node.lineno} reads [{node.args[1].value}] by getattr"))
        targets = node.targets if isinstance(node, ast.Assign) else [node.target] \
            if isinstance(node, (ast.AugAssign, ast.AnnAssign)) else []
        for t in targets:
            for leaf in ([*t.elts] if isinstance(t, ast.Tuple) else [t]):
                if isinstance(leaf, ast.Attribute) and isinstance(leaf.value, ast.Attribute) and is_settings(leaf.value.value):
                    out.append((node.lineno, f"{where}:{node.lineno} writes settings.{leaf.value.attr}.{leaf.attr}"))
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "setattr" and node.args \
                and isinstance(node.args[0], ast.Attribute) and is_settings(node.args[0].value):
            out.append((node.lineno, f"{where}:{node.lineno} writes settings.{node.args[0].attr} by setattr"))
    return [text for _, text in sorted(out, key=lambda o: o[0])]


@pytest.mark.parametrize("stage", REGISTRY, ids=lambda s: s.name)
def test_a_stage_reads_its_own_settings_section_only(stage):
    """No module of the stage's package reads another registered stage's section or writes a section."""
    package = _package(stage)
    assert package.is_dir(), package
    found = [f for path in sorted(package.rglob("*.py")) for f in findings(path, stage.section)]
    assert found == [], "\n".join(found)


def test_the_shared_sections_are_no_stages_own():
    """A shared section is nobody's: no registered stage is declared with one as its section, and each is a section."""
    assert not SECTIONS & set(cfg.SHARED_SECTIONS)
    assert set(cfg.SHARED_SECTIONS) <= set(cfg.sections())
    assert all(new.split(".")[0] in cfg.SHARED_SECTIONS for new in cfg.SHARED.values())


def test_the_walk_finds_what_it_forbids(tmp_path):
    """The check itself: each forbidden form is found, the allowed ones are not."""
    path = tmp_path / "probe.py"
    path.write_text(
        "def f(ctx, s: cfg.Settings, settings):\n"
        "    a = settings.crawl.user_agent\n"             # another stage's section
        "    b = ctx.settings.dedup\n"                    # through the context
        "    c = s.matcher.trees\n"                       # a parameter annotated Settings
        "    d = cfg.as_dict(settings)['export']\n"       # the dict form
        "    sections = cfg.as_dict(settings)\n"
        "    e = sections['align']\n"
        "    g = getattr(settings, 'report')\n"
        "    settings.download.workers = 2\n"             # a write, own section or not
        "    ok = settings.download.concurrency, settings.http.user_agent, settings.annotate.seed, sections['download']\n",
        encoding="utf-8")
    found = findings(path, "download")
    assert [f.split(" ", 1)[1] for f in found] == [
        "reads [crawl]", "reads [dedup]", "reads [matcher]", "reads [export] of as_dict", "reads [align] of as_dict",
        "reads [report] by getattr", "writes settings.download.workers"], found

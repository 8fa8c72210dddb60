"""The docs stay true and render: code fences balanced in README.md and docs/cli.md, `m5data demo`
described once and as the flow it runs, and the README's Python API example runs as written."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import typer.main

ROOT = Path(__file__).resolve().parents[2]
FENCED = ["README.md", "docs/cli.md"]


def fence_problems(text: str) -> list[str]:
    """Where the ``` fences of a Markdown text go wrong.

    An opening fence names its language (```bash, ```text) and a closing one is bare: a bare ```
    where a block should open is the closing fence a block above never got (which a plain count of
    fences misses: the forgotten one and that stray one make an even number)."""
    problems, open_at = [], None
    for n, line in enumerate(text.splitlines(), 1):
        fence = re.match(r"^\s*```(.*)$", line)
        if fence is None:
            continue
        info = fence.group(1).strip()
        if open_at is None:
            if not info:
                problems.append(f"line {n}: a block opens without a language (or an earlier block was not closed)")
            open_at = n
        elif info:
            problems.append(f"line {n}: ```{info} inside the block opened at line {open_at}")
        else:
            open_at = None
    if open_at is not None:
        problems.append(f"the block opened at line {open_at} is never closed")
    return problems


def test_fence_problems_finds_a_block_left_open():
    # docs/cli.md had a bare ``` that opened a block never closed, and a later bare ``` closed it
    assert fence_problems("```bash\nx\n```\n\n```\ny\n\n## heading\n```\nz\n") == [
        "line 5: a block opens without a language (or an earlier block was not closed)"]
    assert fence_problems("```bash\nx\n\n## heading\n```bash\ny\n```\n") == [
        "line 5: ```bash inside the block opened at line 1"]
    assert fence_problems("```bash\nx\n") == ["the block opened at line 1 is never closed"]
    assert fence_problems("```bash\nx\n```\n\n```text\ny\n```\n") == []


@pytest.mark.parametrize("name", FENCED)
def test_code_fences_are_balanced(name):
    assert fence_problems((ROOT / name).read_text(encoding="utf-8")) == []


def _section(text: str, heading: str) -> str:
    """The text from ``heading`` (a line starting with it) to the next heading of its level or above."""
    start = text.index(heading)
    level = len(heading) - len(heading.lstrip("#"))
    rest = text[start + len(heading):]
    end = re.search(rf"^#{{1,{level}}} ", rest, re.M)
    return heading + (rest[: end.start()] if end else rest)


def test_cli_md_describes_the_demo_once_as_the_flow_it_runs():
    from m5data.cli import app
    from m5data.config import FlowSettings

    text = (ROOT / "docs/cli.md").read_text(encoding="utf-8")
    assert len(re.findall(r"^### `m5data demo[ `]", text, re.M)) == 1
    section = _section(text, "### `m5data demo ")
    demo = typer.main.get_command(app).commands["demo"]
    for option in (o for p in demo.params for o in p.opts if o.startswith("--") and o != "--help"):
        assert option in section.splitlines()[0], option
    for stage in FlowSettings().stages.split(","):
        assert stage in section, stage
    assert "m5data-pipeline" in section and "report" in section


def _readme_python_api() -> str:
    section = _section((ROOT / "README.md").read_text(encoding="utf-8"), "## Python API")
    block = re.search(r"^```python\n(.*?)^```", section, re.M | re.S)
    assert block, "README.md's Python API section has no python block"
    return block.group(1)


def test_the_readme_python_api_example_runs(tmp_path):
    from support.store_samples import filled_store

    store = filled_store(tmp_path / "m5data-store")  # the default store.path, from where the example runs
    # what align would give its products (splits refuse a store without unified labels)
    paths = {(r["platform"], " > ".join(r["category_path"])) for r in store.read("products").to_pylist()}
    store.replace("taxonomy", [{"level": 1, "label_id": 1, "name": "c", "class_id": 1},
                               {"level": 2, "label_id": 1, "name": "s", "parent_id": 1, "class_id": 1, "sub_class_id": 1}])
    store.replace("label_map", [{"platform": platform, "raw_path": path, "class_id": 1, "sub_class_id": 1,
                                 "subsub_class_id": 0, "method": "own"} for platform, path in paths])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    env = {k: v for k, v in env.items() if not k.startswith("M5DATA_")}
    done = subprocess.run([sys.executable, "-c", _readme_python_api()], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("ok 4 ") and "query-c" in done.stdout, done.stdout

"""A verb's progress bar starts with its first unit of work: a verb that fails its checks first
(no splits, an output folder it cannot write) prints its one-line error and no empty bar, and a run
with nothing to do prints no ``0/0`` bar (issue 75, 15)."""

from __future__ import annotations

import re

import pytest
from support.cli_inprocess import invoke

ENV = {"COLUMNS": "80", "TERM": "dumb", "FORCE_COLOR": None}
BAR = re.compile(r"━|\d+/\?|\b0/0\b")


@pytest.fixture
def empty_store(tmp_path):
    store = tmp_path / "store"
    done = invoke("--store", str(store), "init", env=ENV, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    return store


def _errors(done) -> list[str]:
    return [line for line in (done.stdout + done.stderr).splitlines() if line.startswith("error:")]


def test_export_that_fails_its_checks_prints_the_error_and_no_bar(empty_store, tmp_path):
    done = invoke("--store", str(empty_store), "export", "--out", str(tmp_path / "shards"), env=ENV, cwd=tmp_path)
    assert done.returncode == 1
    assert [line for line in _errors(done) if "no splits" in line], done.stdout + done.stderr
    assert "export shards" not in done.stdout + done.stderr and not BAR.search(done.stdout + done.stderr), done.stdout


def test_report_into_a_folder_it_cannot_make_is_one_error_line(empty_store, tmp_path):
    (tmp_path / "a-file").write_text("not a folder")
    done = invoke("--store", str(empty_store), "report", "--out", str(tmp_path / "a-file" / "report"),
                  env=ENV, cwd=tmp_path)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "Traceback" not in done.stderr, done.stderr
    assert len(_errors(done)) == 1 and "a-file" in _errors(done)[0], done.stderr
    assert not BAR.search(done.stdout + done.stderr)


@pytest.mark.parametrize("verb", ["download", "extract"])
def test_a_run_with_nothing_to_do_prints_no_empty_bar(empty_store, tmp_path, verb):
    done = invoke("--store", str(empty_store), verb, env=ENV, cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    lines = [line for line in done.stdout.splitlines() if BAR.search(line) and not line.startswith(("┏", "┡"))]
    assert not lines, done.stdout


def test_a_bar_shows_from_its_first_unit_of_work_on():
    import io

    from rich.console import Console
    from rich.progress import MofNCompleteColumn, TextColumn

    from m5data.bars import bar

    def shown(work) -> str:
        out = Console(file=io.StringIO(), width=80, color_system=None)
        with bar(TextColumn("shards"), MofNCompleteColumn(), console=out) as progress:
            work(progress, progress.add_task("shards", total=None))
        return out.file.getvalue()

    def fails(progress, task):
        pass

    assert shown(fails) == ""
    assert shown(lambda progress, task: progress.update(task, completed=0, total=0)) == ""
    assert "1/2" in shown(lambda progress, task: progress.update(task, completed=1, total=2))

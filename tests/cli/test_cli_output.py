"""What the verbs print stays readable in a log: no table cut to '1…' at 80 columns with stdout
piped, and no user data eaten as rich markup."""

from __future__ import annotations

import io
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pytest
from rich.console import Console
from support.cli_inprocess import invoke

from m5data.console import Table, fail, show

ROOT = Path(__file__).resolve().parents[2]
METRICS = ["model", "modalities", "accuracy", "coarse mAP@1", "coarse mAP@5", "coarse mAP@10", "coarse Prec@5",
           "fine mAP@1", "fine mAP@5", "fine mAP@10", "fine Prec@5", "NMI", "purity", "probe"]


def _print(table, width: int = 80) -> str:
    out = Console(file=io.StringIO(), width=width, color_system=None)
    show(table, out=out)
    return out.file.getvalue()


def test_a_wide_table_prints_in_blocks_that_keep_every_figure_and_the_row_keys():
    t = Table(title="metrics")
    for name in METRICS:
        t.add_column(name, justify="right")
    rows = [["SCALE (thin)", mods] + [f"{10 + i + r / 7:.4f}" for i in range(len(METRICS) - 2)]
            for r, mods in enumerate(["text", "text+image", "text+image+table"])]
    for row in rows:
        t.add_row(*row)
    text = _print(t)
    assert "…" not in text
    assert max(len(line) for line in text.splitlines()) <= 80
    for row in rows:
        for cell in row[2:]:
            assert cell in text
    # every block repeats the columns that tell the rows apart (model alone does not)
    assert text.count("text+image+table") >= 3


def test_a_long_word_wraps_in_its_column_instead_of_being_cut():
    t = Table()
    t.add_column("key")
    t.add_column("a value that is long")
    t.add_row("x" * 70, "z" * 70)
    text = _print(t, width=60)
    assert "…" not in text and text.count("x") == 70 and text.count("z") == 70


def test_a_table_too_narrow_even_to_wrap_prints_one_block_per_row():
    t = Table()
    for name in ("alpha", "beta", "gamma", "delta", "epsilon", "zeta"):
        t.add_column(name)
    t.add_row(*(f"{name}-{'v' * 14}" for name in ("a", "b", "c", "d", "e", "f")))
    text = _print(t, width=40)
    assert text.startswith("row 1") and "…" not in text
    assert all(f"{name}-{'v' * 14}" in text for name in ("a", "b", "c", "d", "e", "f"))


def test_table_cells_and_titles_are_data_not_markup():
    t = Table(title="section [annotate]")
    t.add_column("key")
    t.add_row("[bold]not bold[/]")
    text = _print(t)
    assert "section [annotate]" in text and "[bold]not bold[/]" in text


def test_error_messages_keep_bracketed_text(capsys):
    import typer

    with pytest.raises(typer.Exit):
        fail("no key 'x' in section [annotate]; known in [annotate]: seed")
    err = capsys.readouterr().err
    assert "section [annotate];" in err and "known in [annotate]:" in err


def _cli(*args, cwd=None, timeout=600):
    env = {**os.environ, "COLUMNS": "80", "PYTHONPATH": str(ROOT), "TERM": "dumb"}
    env.pop("FORCE_COLOR", None)
    return subprocess.run([sys.executable, "-m", "m5data", *args], capture_output=True, text=True, env=env,
                          cwd=cwd, timeout=timeout)


def test_unknown_config_key_names_its_section():
    done = _cli("--set", "dedup.minhash_thresh=0.5", "stats")
    assert done.returncode != 0
    assert "in section [dedup]" in done.stderr and "(known in [dedup]:" in done.stderr


@pytest.fixture(scope="module")
def demo_copy(demo_store_factory, tmp_path_factory):
    from support.demo_fixtures import copy_store

    return copy_store(demo_store_factory(products=60, seed=0), tmp_path_factory.mktemp("cli80"))


def _in_process(*args, cwd) -> subprocess.CompletedProcess:
    """In this process (tests/support/cli_inprocess.py) with ``COLUMNS=80``; ``test_run_is_readable_at_80_columns_piped``
    keeps a real pipe to a real process."""
    return invoke(*args, env={"COLUMNS": "80", "TERM": "dumb", "FORCE_COLOR": None}, cwd=cwd)


def _readable(*args, cwd, real_pipe: bool = False):
    done = (_cli if real_pipe else _in_process)(*args, cwd=cwd)
    shown = done.stdout + done.stderr
    assert done.returncode == 0, (args, shown[-3000:])
    assert "…" not in shown, (args, shown)
    return done


def test_the_store_and_annotate_verbs_are_readable_at_80_columns_piped(demo_copy, tmp_path):
    """stats, doctor and annotate *, each as a user runs it with its output going to a log file."""
    store = ["--store", str(demo_copy)]
    for args in [
        [*store, "stats"],
        [*store, "doctor", "--quick"],
        [*store, "annotate", "dedup"],
        [*store, "annotate", "match-level"],
        [*store, "--set", "pools.queries=10", "annotate", "pools"],
    ]:
        _readable(*args, cwd=tmp_path)


def test_the_split_export_and_report_verbs_are_readable_at_80_columns_piped(demo_store_factory, tmp_path):
    from support.demo_fixtures import copy_store

    store = ["--store", str(copy_store(demo_store_factory(products=60, seed=0), tmp_path))]
    shards = tmp_path / "shards"
    for args in [
        [*store, "--set", "splits.min_queries=2", "build-splits", "--version", "v1"],
        [*store, "check-splits", "--version", "v1"],
        [*store, "export", "--split", "all", "--out", str(shards)],
        ["check-shards", str(shards)],
        [*store, "report", "--out", str(tmp_path / "report")],
    ]:
        _readable(*args, cwd=tmp_path)


def test_train_and_evaluate_are_readable_at_80_columns_piped(tmp_path):
    """evaluate's 14-column table printed every cell as '1…' in a log before."""
    from support.train_shards import write_shards

    from m5data.train.evaluate import format_cell

    shards = write_shards(tmp_path / "shards")
    conf = tmp_path / "tiny.toml"
    conf.write_text("[train]\nworkers = 0\nbatch_size = 8\ncheckpoint_every = 1000\n")
    run = tmp_path / "run"
    _readable("train", "--shards", str(shards), "--preset", str(conf), "--max-steps", "2", "--out", str(run), cwd=tmp_path)
    shown = _readable("evaluate", "--run", str(run), "--shards", str(shards), cwd=tmp_path).stdout
    metrics = json.loads((run / "metrics.json").read_text())
    for row in metrics["rows"]:
        assert row["model"] in shown
        figures = [format_cell(row[c]) for c in metrics["columns"] if isinstance(row.get(c), float) and row[c] == row[c]]
        assert figures and all(f in shown for f in figures), (row, shown)


def test_run_is_readable_at_80_columns_piped(demo_copy, prefect_harness, tmp_path):
    _readable("--store", str(demo_copy), "run", "--stages", "report", "--no-progress", cwd=tmp_path, real_pipe=True)


LONG_PATH = ("/home/someone/projects/m5data-experiments/very-long-folder-name/stores/demo-store-2024/logs/crawl/"
             "run-00012/crawl.log")
LONG_URL = "https://shop.example.com/products/category/very-long-product-name-here-12345?variant=abc"


def _whole_or_broken_after_slash(path: str, text: str) -> bool:
    """Every part of ``path`` up to and with its next '/' is printed on one line, unbroken."""
    return all(part in text for part in re.findall(r"[^/]*/?", path) if part)


def test_paths_and_urls_in_cells_break_only_after_a_slash_at_80_columns():
    from m5data.console import arrow_table

    config = Table()
    config.add_column("key")
    config.add_column("value", overflow="fold")
    config.add_column("source", overflow="fold")
    config.add_row("store.path", LONG_PATH, "/etc/m5data/config-folder/m5data.toml")
    doctor = Table()
    for name in ("check", "severity", "path", "problem", "repair"):
        doctor.add_column(name)
    doctor.add_row("blobs", "error", LONG_PATH, "a file the catalog does not name", "m5data doctor --repair")
    for table, paths in [(config, [LONG_PATH, "/etc/m5data/config-folder/m5data.toml"]), (doctor, [LONG_PATH]),
                         (arrow_table(pa.table({"url": [LONG_URL], "n": [1]})), [LONG_URL])]:
        text = _print(table)
        assert "…" not in text and max(len(line) for line in text.splitlines()) <= 80, text
        for path in paths:
            assert _whole_or_broken_after_slash(path, text), (path, text)
        assert "//shop.example.com/" in text or LONG_URL not in paths  # never between the two of '//'


def test_a_path_part_wider_than_the_console_is_printed_whole_past_it():
    t = Table()
    t.add_column("check")
    t.add_column("path")
    path = "/data/" + "x" * 100 + "/file.parquet"
    t.add_row("orphan", path)
    text = _print(t)
    assert "x" * 100 + "/" in text and "/file.parquet" in text and "…" not in text


def test_config_show_prints_a_long_store_path_whole_at_80_columns(tmp_path):
    store = tmp_path / "a-folder-with-a-long-name" / "another-folder-with-a-long-name" / "the-store-itself-here"
    done = invoke("--store", str(store), "config", "show", "store", env={"COLUMNS": "80", "TERM": "dumb",
                                                                         "FORCE_COLOR": None})
    assert done.returncode == 0, done.stderr
    assert _whole_or_broken_after_slash(str(store), done.stdout), done.stdout

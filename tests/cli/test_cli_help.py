"""What ``m5data`` says about itself at 80 columns: every verb's --help whole (no setting name cut),
an example in each stage verb's help, ``--version``, and ``config show`` (whole environment variable
names, one section at a time)."""

from __future__ import annotations

import importlib.metadata
import re

import pytest
import typer.main
from typer.testing import CliRunner

from m5data import config as cfg
from m5data import stages
from m5data.cli import app

runner = CliRunner()
NARROW = {"COLUMNS": "80", "LINES": "40"}
SETTINGS = sorted((key for key, _ in cfg.Settings().items()), key=len, reverse=True)


def _commands(cmd=None, path=()):
    """``(path, command)`` of every command of the CLI, group commands included."""
    cmd = cmd or typer.main.get_command(app)
    if hasattr(cmd, "commands"):
        for name, sub in cmd.commands.items():
            yield from _commands(sub, (*path, name))
    else:
        yield path, cmd


COMMANDS = sorted(path for path, _ in _commands())
STAGE_VERBS = {(v.parent, v.name) if v.parent else (v.name,) for s in stages.REGISTRY for v in s.verbs}  # their paths


def _help(path) -> str:
    result = runner.invoke(app, [*path, "--help"], env=NARROW)
    assert result.exit_code == 0, result.output
    return result.output


def _named_settings(text: str) -> set[str]:
    """The setting names (``crawl.download_delay``) a help text mentions."""
    return {key for key in SETTINGS if re.search(rf"(?<![\w.]){re.escape(key)}(?![\w])", text)}


@pytest.mark.parametrize("path", COMMANDS + [()], ids=lambda p: " ".join(p) or "m5data")
def test_help_at_80_columns_cuts_no_setting_name(path):
    cmd = dict(_commands()).get(path) or typer.main.get_command(app)
    written = " ".join([cmd.help or ""] + [getattr(p, "help", None) or "" for p in cmd.params])
    shown = _help(path)
    assert "…" not in shown, shown
    assert max(len(line) for line in shown.splitlines()) <= 80, shown
    missing = _named_settings(" ".join(written.split())) - _named_settings(shown)
    assert not missing, f"cut or split in `m5data {' '.join(path)} --help`: {sorted(missing)}\n{shown}"


GROUPS = sorted({path[:n] for path in COMMANDS for n in range(len(path))})


@pytest.mark.parametrize("path", GROUPS, ids=lambda p: " ".join(p) or "m5data")
def test_a_group_lists_each_command_with_its_first_sentence_whole(path):
    """click cuts a command's summary to one line with '...' (`init  Create an empty store ... at...`)."""
    group = typer.main.get_command(app)
    for name in path:
        group = group.commands[name]
    shown = " ".join(_help(path).split())
    for name, cmd in group.commands.items():
        first = " ".join((cmd.help or "").split("\n\n")[0].split()).split(". ")[0].rstrip(".")
        assert first in shown, (name, first)


@pytest.mark.parametrize("path", [p for p in COMMANDS if any(p[:len(v)] == v for v in STAGE_VERBS)], ids=" ".join)
def test_each_stage_verb_has_an_example(path):
    shown = _help(path)
    head, _, examples = shown.partition("Example")
    assert examples, f"`m5data {' '.join(path)} --help` has no example:\n{shown}"
    assert re.search(rf"^\s+m5data .*{re.escape(path[-1])}", examples, re.M), shown


def test_version():
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0, result.output
    assert result.output.strip() == f"m5data {importlib.metadata.version('m5data')}"


def test_config_show_keeps_env_names_whole_at_80_columns():
    result = runner.invoke(app, ["config", "show"], env=NARROW)
    assert result.exit_code == 0, result.output
    words = set(re.findall(r"[A-Z0-9_]+", result.output))
    names = {cfg.env_name(key) for key in SETTINGS}
    assert names <= words, sorted(names - words)[:5]
    assert max(len(line) for line in result.output.splitlines()) <= 80


def test_config_show_one_section():
    result = runner.invoke(app, ["--set", "download.retries=5", "config", "show", "download"], env=NARROW)
    assert result.exit_code == 0, result.output
    keys = set(re.findall(r"\b([a-z]+)\.[a-z_]+\b", result.output))
    assert keys == {"download"}, result.output
    line = next(line for line in result.output.splitlines() if "download.retries" in line)
    assert "5" in line and "flag" in line
    assert "M5DATA_DOWNLOAD_MAX_FAILURE_RATE" in result.output
    everything = runner.invoke(app, ["config", "show"], env=NARROW).output
    assert len(result.output.splitlines()) < len(everything.splitlines()) / 5


def test_config_show_unknown_section_lists_the_sections():
    result = runner.invoke(app, ["config", "show", "downlaod"])
    assert result.exit_code == 2
    assert "downlaod" in result.output and "download" in result.output and "crawl" in result.output
    assert "Traceback" not in result.output

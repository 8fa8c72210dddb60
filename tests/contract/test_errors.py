"""The one error hierarchy (m5data/errors.py): every exception class of the package is a UserError, a
TransientFailure or one of the few item errors caught where they are raised; a verb prints a UserError
as one line whatever its stage."""

from __future__ import annotations

import ast
import importlib
import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from m5data.cli import app
from m5data.storage import Store

PACKAGE = Path(__file__).resolve().parents[2] / "m5data"

# the item errors (errors.py): each is caught where it is raised and becomes a failure reason of one item,
# a request or a parse; none reaches a verb or a flow
ITEM_ERRORS = {
    "m5data.crawler.jsobject.JSSyntaxError", "m5data.crawler.pagecap.PageCapReached", "m5data.crawler.safety.RefusedRequest",
    "m5data.download.declared.ImageDecodeError", "m5data.download.declared.ImageTooLarge",
    "m5data.download.safety.UnsafeURL", "m5data.extract.ffmpeg.MediaError", "m5data.extract.frameplan.Unsupported",
    "m5data.extract.frameplan.Untrusted",
    "m5data.importer.layout_folder.HardLinkError", "m5data.importer.layout_folder.ItemError",
    "m5data.importer.utf8.NeedsExact", "m5data.importer.utf8.NotUtf8",
    "m5data.vision.pictures.PictureError",
    "m5data.storage.blobs.BlobPathError", "m5data.storage.reading._Vanished", "m5data.storage.s3stages._Unsettled",
}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _exception_classes() -> dict[str, type]:
    """Every exception class defined in m5data/, by ``module.Name`` (found with ast, then imported)."""
    found = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        if path.name == "__main__.py":
            continue
        tree = ast.parse(path.read_text(), str(path))
        top = {id(n) for n in tree.body}
        for node in ast.walk(tree):
            if not isinstance(node, ast.ClassDef):
                continue
            name = f"{_module_name(path)}.{node.name}"
            if id(node) not in top:  # a class inside a function or class would escape the check
                assert not any(isinstance(b, ast.Name) and b.id.endswith(("Error", "Exception")) for b in node.bases), name
                continue
            cls = getattr(importlib.import_module(_module_name(path)), node.name)
            if isinstance(cls, type) and issubclass(cls, BaseException):
                found[name] = cls
    return found


def test_every_exception_class_is_a_user_error_a_transient_failure_or_an_item_error():
    from m5data.errors import TransientFailure, UserError

    classes = _exception_classes()
    assert len(classes) > 40  # the walk found them
    outside = sorted(name for name, cls in classes.items()
                     if not issubclass(cls, (UserError, TransientFailure)) and name not in ITEM_ERRORS)
    assert outside == []
    assert sorted(ITEM_ERRORS - set(classes)) == []  # the list names only classes that exist
    both = sorted(name for name, cls in classes.items() if issubclass(cls, UserError) and issubclass(cls, TransientFailure))
    assert both == ["m5data.crawler.crawl.CrawlInterrupted", "m5data.crawler.crawl.CrawlNotStored"]


def test_the_old_names_are_the_hierarchy():
    from m5data import errors, stages
    from m5data.config import ConfigError
    from m5data.storage import StoreBusy, StoreError

    assert stages.TransientFailure is errors.TransientFailure and stages.DownloadFailed is errors.DownloadFailed
    assert stages.StageError is errors.UserError
    assert issubclass(StoreBusy, StoreError) and issubclass(StoreError, errors.UserError)
    assert issubclass(ConfigError, errors.UserError) and issubclass(ConfigError, ValueError)  # pydantic's validators


_HOLD = """
import sys
from m5data.storage import Store
with Store.open(sys.argv[1]).stage_lock("match_level"):
    print("held", flush=True)
    sys.stdin.read()
"""


def test_a_user_error_is_one_line_in_a_verb_that_does_not_name_it(tmp_path):
    """The match-level verb names no store error: a busy stage lock is still one line and exit 1."""
    Store.init(tmp_path / "store")
    holder = subprocess.Popen([sys.executable, "-c", _HOLD, str(tmp_path / "store")], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, env={**os.environ, "PYTHONPATH": str(PACKAGE.parent)}, text=True)
    try:
        assert holder.stdout.readline() == "held\n"
        result = CliRunner().invoke(app, ["--store", str(tmp_path / "store"), "annotate", "match-level"])
    finally:
        holder.communicate("")
    assert result.exit_code == 1, result.output
    assert "error:" in result.output and "match_level" in result.output and "Traceback" not in result.output
    assert isinstance(result.exception, SystemExit)


def test_one_line_errors_catches_user_errors_and_passes_what_the_verb_handles(capsys):
    import typer

    from m5data.errors import UserError
    from m5data.verbs import one_line_errors

    class Bad(UserError):
        pass

    with pytest.raises(typer.Exit) as exit_:
        with one_line_errors():
            raise Bad("the file x.csv has no column id")
    assert exit_.value.exit_code == 1 and "the file x.csv has no column id" in capsys.readouterr().err
    with pytest.raises(Bad):
        with one_line_errors(handles=(Bad,)):
            raise Bad("shown by the verb itself")
    with pytest.raises(RuntimeError):  # a bug stays a traceback
        with one_line_errors():
            raise RuntimeError("a bug")


def test_no_verb_catches_a_builtin_that_hides_bugs():
    """A verb's one-line errors are UserErrors; a RuntimeError (or Exception) named there would print a bug as
    if it were the user's."""
    named = []
    for path in sorted(PACKAGE.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Call) and getattr(node.func, "id", getattr(node.func, "attr", None)) in (
                    "run_stage", "one_line_errors"):
                named += [f"{path.relative_to(PACKAGE)}:{node.lineno} {a.id}" for a in node.args
                          if isinstance(a, ast.Name) and a.id in ("RuntimeError", "Exception", "BaseException")]
    assert named == []


def test_a_text_model_that_cannot_be_loaded_is_a_user_error(tmp_path):
    """The pools verb's text model: a missing folder (or no sentence-transformers) is one line naming it."""
    from m5data.annotate.kernels.embed import sentence_transformer
    from m5data.errors import UserError

    with pytest.raises(UserError, match=f"model folder not found: {tmp_path / 'no-model'}"):
        sentence_transformer(["red shoe"], str(tmp_path / "no-model"))
    bare = Store.init(tmp_path / "bare")
    bare.write("products", [{"product_id": f"shop:{i}", "platform": "shop", "source_id": str(i), "title": t}
                            for i, t in enumerate(["red shoe", "blue shoe", "green hat"])])
    result = CliRunner().invoke(app, ["--store", str(bare.root), "annotate", "pools", "--text-model",
                                      str(tmp_path / "no-model")])
    assert result.exit_code == 1 and isinstance(result.exception, SystemExit), result.exception
    assert "error:" in result.output and "no-model" in result.output


def test_a_run_folder_without_a_model_is_a_user_error_naming_it(tmp_path):
    """Turned into a UserError where it is found: the train verbs catch no FileNotFoundError for it."""
    from m5data.errors import UserError
    from m5data.train.loop import load_model

    with pytest.raises(UserError, match=f"no model.pt or checkpoint.pt in {tmp_path}"):
        load_model(tmp_path)

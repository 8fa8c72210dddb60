"""Moved: the import lives in :mod:`m5data.importer` now (its typer app in :mod:`m5data.importer.cli`).
This name stays only while ``m5data/cli.py`` GROUPS still names ``m5data.export.importer``."""

from ..importer.cli import app

__all__ = ["app"]

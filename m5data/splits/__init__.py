"""Splits: ``build-splits`` assigns products to the paper's splits by a seeded hash of a stable key;
``check-splits`` verifies the invariants and the manifest (docs/splits.md)."""

from .build import BuildReport, SplitsError, build
from .check import CheckReport, check

__all__ = ["BuildReport", "CheckReport", "SplitsError", "build", "check"]

"""What ``m5data doctor`` reports: one :class:`Finding` per problem (its severity, its path in the
store, what ``--repair`` did), a :class:`DoctorReport` of them, and the quarantine folder where a
repair moves what it takes out of the store (never deleted)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from .runs import StageStats

if TYPE_CHECKING:
    from .store import Store

QUARANTINE = "quarantine"

# severities: error and warning make the check fail; info is shown only
ERROR, WARNING, INFO = "error", "warning", "info"


@dataclass
class Finding:
    check: str  # part, blob, derived, temp, catalog
    severity: str  # error, warning, info
    path: str  # relative to the store root where it is inside it
    problem: str
    repair: str = ""  # what --repair did (or would do)
    repaired: bool = False


@dataclass
class DoctorReport:
    findings: list[Finding] = field(default_factory=list)
    checked: dict[str, int] = field(default_factory=dict)  # parts, blobs, derived files, temp files
    stats: StageStats | None = None
    repair: bool = False
    config: dict = field(default_factory=dict)  # what its runs row records (written by the verb, tools/doctor_cli.py)

    @property
    def problems(self) -> list[Finding]:
        return [f for f in self.findings if f.severity in (ERROR, WARNING)]

    @property
    def ok(self) -> bool:
        """True when nothing is wrong (or, with --repair, everything wrong was repaired)."""
        return all(f.repaired for f in self.problems)


def rel(store: Store, path: Path) -> str:
    """``path`` relative to the store root (as findings name it), unchanged when outside it."""
    try:
        return str(Path(path).relative_to(store.local_root()))
    except (ValueError, TypeError):  # outside it, or no folder (object storage)
        return str(path)


def quarantine_dir(store: Store, stamp: str) -> Path:
    """Where one repair run (``stamp``) moves what it takes out of the store."""
    return store.local_root() / QUARANTINE / stamp

"""Split and version names: one strict pattern, checked wherever a name becomes part of a path.

A split or version name read from the ``splits`` table is data, and a store may come from someone
else: a name becomes a file or folder name (``<split>-000000.tar``, ``derived/splits/<version>/``),
so ``../x`` or ``/tmp/x`` would lead out of the folder it is meant for, and a name of hundreds of
characters makes the file system refuse it (ENAMETOOLONG). Every reader that builds a path from a
name checks it with :func:`check_name` (or :func:`name_problem`) first.
"""

from __future__ import annotations

import re

from ..errors import UserError

NAME_MAX = 64  # characters; leaves room for the suffixes (-000000.stats.json) under any file-name limit
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")


class BadNameError(UserError, ValueError):
    """A split or version name that is not a plain name (see :func:`name_problem`)."""


def name_problem(name) -> str | None:
    """Why ``name`` is not a plain split/version name, or None when it is one.

    A plain name has 1 to 64 characters: letters, digits, ``.``, ``_`` and ``-``, starting with a
    letter or digit (so no slash, no ``..`` component, no hidden file, nothing a shell or SQL quotes).
    """
    if not isinstance(name, str) or not name:
        return "empty"
    if len(name) > NAME_MAX:
        return f"{len(name)} characters, at most {NAME_MAX}"
    if not _NAME.fullmatch(name):
        return "only letters, digits, '.', '_' and '-', starting with a letter or digit"
    return None


def check_name(kind: str, name) -> str:
    """``name`` when it is a plain name, else :class:`BadNameError` naming ``kind`` (``split``, ``split version``)."""
    problem = name_problem(name)
    if problem is not None:
        raise BadNameError(f"{kind} name {shown(name)} is not a plain name ({problem})")
    return name


def shown(name, limit: int = 48) -> str:
    """``repr`` of a name, cut for a one-line message."""
    text = repr(name)
    return text if len(text) <= limit else text[:limit - 4] + "...'"


def version_order(version: str) -> tuple[int, str]:
    """A split version's order: the number it ends with, then its name (``v2`` < ``v10``)."""
    import re

    m = re.search(r"(\d+)$", version)
    return (int(m.group(1)) if m else 0, version)


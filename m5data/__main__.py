"""``python -m m5data``: the same as the ``m5data`` command."""

from .cli import main

main()

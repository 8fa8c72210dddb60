"""The store's own verbs, mounted from m5data/stages.py (``TOOL_VERBS``): ``sql``, ``stats`` and
``compact`` (store_cli.py), ``doctor`` (doctor_cli.py) and ``store copy`` (copy_cli.py). They work on
a store through ``m5data.storage``; storage/ imports nothing of them."""

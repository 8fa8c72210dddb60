"""The dedup stage: exact and near-duplicate listings -> duplicate groups (the ``dedup`` table).

``job`` groups (rules, then the trained matcher's pairs: ``matcher_pairs``), ``report`` what a run
found and its steps' seconds, ``score`` its groups against a demo truth; ``reads`` the products,
main images and specs as dedup reads them (with the list of exact keys, ``Inputs.exact_keys``);
``pairs`` the rules' pairs, ``groups`` the groups and the table's write; ``spec_rule`` / ``spec_blocks``
the spec rule and its blocked search; its kernels: ``near`` (MinHash/LSH), ``phash`` (the pHash
multi-index), ``near_jit`` / ``spec_jit`` their compiled loops, ``key_runs``, ``values`` (spec values as
compared); ``kept_pairs`` and ``kept_inputs`` (``kept_inputs_read``; its files' format ``npz_views``)
what a run keeps so the next searches only pairs of changed products; ``stage`` its entry in the
registry; ``cli`` its verb. The matcher's cascade reads products through ``reads``. docs/annotate.md "Duplicate groups"."""

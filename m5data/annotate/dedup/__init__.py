"""The dedup stage: exact and near-duplicate listings -> duplicate groups (the ``dedup`` table).

``job`` groups (rules, then the trained matcher's pairs: ``matcher_pairs``); ``spec_rule`` the spec
rule's blocked search; ``kept_pairs`` and ``kept_inputs`` what a run keeps so the next searches only
pairs of changed products; ``stage`` its entry in the registry; ``cli`` its verb. docs/annotate.md
"Duplicate groups"."""

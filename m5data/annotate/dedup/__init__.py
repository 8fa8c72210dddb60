"""The dedup stage: exact and near-duplicate listings -> duplicate groups (the ``dedup`` table).

``job`` groups (rules, then the trained matcher's pairs: ``dedup_learned``); ``dedup_spec`` the spec
rule's blocked search; ``dedup_kept`` and ``dedup_index`` what a run keeps so the next searches only
pairs of changed products; ``stage`` its entry in the registry; ``cli`` its verb. docs/annotate.md
"Duplicate groups"."""

"""Curation between the raw store and the splits (docs/annotate.md), one module per job.

- ``dedup``: exact and near-duplicate groups -> ``dedup``
- ``match_level``: caption match level (well, partial, poor) -> ``caption_match``
- ``pools``: query candidate pools (top-K by cosine of image+text embeddings) -> ``pools``
  (embedders in ``embed``, blocked exact / faiss search in ``search``, labelling tasks in ``tasks``)
- ``crowd``: worker judgements -> ``annotations`` (``simulate``: synthetic ones from a demo truth);
  GLAD / majority / Dawid-Skene (``glad``) -> ``matches``, ``workers``

Each job is a stage: ``run(store, settings, ...) -> StageStats`` with a row in ``runs``.
"""

"""Curation between the raw store and the splits (docs/annotate.md): one package per stage, each registered
once in m5data/stages.py with its settings section, its ``stage.py`` (``run(ctx) -> StageStats``), its
``job.py`` and its verbs under ``m5data annotate`` (``cli.py``).

- ``dedup``: exact and near-duplicate groups -> ``dedup``
- ``match_level``: caption match level (well, partial, poor) -> ``caption_match``
- ``pools``: query candidate pools (top-K by cosine of image+text embeddings) -> ``pools``
- ``crowd``: labelling tasks out, worker judgements in -> ``annotations``; GLAD / majority /
  Dawid-Skene -> ``matches``, ``workers`` (``simulate``: synthetic judgements from a demo truth)
- ``matcher``: the learned same-product matcher, trained from ``matches`` -> ``derived/matcher/``

``kernels`` holds what two of them compute with (no stage imports another's modules); ``ui`` is the
labelling web app; ``stage_job`` what every stage's ``run`` shares.
"""

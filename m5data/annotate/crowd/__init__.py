"""The crowd stage: workers' judgements -> ``matches`` and ``workers`` (GLAD, majority, Dawid-Skene).

``job`` imports judgements and aggregates them (``glad`` the models; ``judgement_fields`` and
``judgement_files`` the files); ``simulate`` synthetic judgements from a demo shop's truth; ``tasks``
the labelling tasks written from the pools (``uncertain``: the pairs active learning asks next).
docs/annotate.md "Crowd labels and GLAD"."""

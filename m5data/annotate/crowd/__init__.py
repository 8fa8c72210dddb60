"""The crowd stage: workers' judgements -> ``matches`` and ``workers`` (GLAD, majority, Dawid-Skene).

``job`` aggregates the judgements (``glad`` the models); ``judgement_import`` imports them (``judgement_fields``
and ``judgement_files`` the files); ``simulate`` synthetic judgements from a demo shop's truth; ``score`` the
methods against its truth; ``tasks`` the labelling tasks written from the pools (``uncertain``: the pairs active
learning asks next).
docs/annotate.md "Crowd labels and GLAD"."""

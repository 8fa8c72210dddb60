"""What pools, match-level and the matcher's text embeddings compute with: no stage of its own, no
settings of its own.

- ``embed``: the embedders (TF-IDF/SVD, the packaged sentence model) and their errors;
- ``search`` / ``reservoir``: the blocked exact top-k search and its numba-compiled per-row top-k.

It imports no curation package. What only one stage runs lives in that stage's package (dedup's
MinHash/pHash/spec kernels in ``dedup/``, the matcher's pair features and model in ``matcher/``);
where one package uses another's, it goes through what that one publishes
(tests/contract/test_module_layers.py, docs/architecture.md "The layers")."""

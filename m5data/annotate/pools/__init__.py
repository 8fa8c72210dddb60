"""The pools stage: each query's candidate pool, top-K by cosine of image+text embeddings -> ``pools``.

``job`` builds them; ``pool_vectors`` / ``pool_embedder`` / ``pool_images`` the embeddings;
``pool_lists`` each query's kept candidates; ``pools_incremental`` what a complete run keeps for the
next and whether it can be incremental, ``pools_update`` the run that embeds and searches only what
changed; ``pool_rows`` what both runs share; ``pools_score`` recall against a truth.
docs/annotate.md "Query candidate pools"."""

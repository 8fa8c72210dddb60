"""The pools stage: each query's candidate pool, top-K by cosine of image+text embeddings -> ``pools``.

``job`` builds them; ``vectors`` / ``embedder`` / ``images`` the embeddings;
``candidate_lists`` each query's kept candidates; ``next_run`` what a complete run keeps for the
next and whether it can be incremental, ``update_run`` the run that embeds and searches only what
changed; ``rows`` what both runs share; ``score`` recall against a truth.
docs/annotate.md "Query candidate pools"."""

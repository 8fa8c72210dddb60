"""The match-level stage: how well each product's caption matches it (well, partial, poor) -> ``caption_match``.

``job`` scores; ``reads`` what it reads and writes per product; ``textclf`` (with
``caption_hashing``) the cross-fitted caption classifier; ``image_neighbours`` the image neighbours;
``kept_model`` keeps a fitted classifier so a later run scores only what changed. docs/annotate.md
"Caption match level"."""

"""The match-level stage: how well each product's caption matches it (well, partial, poor) -> ``caption_match``.

``job`` scores; ``match_inputs`` what it reads and writes per product; ``textclf`` (with
``caption_hashing``) the cross-fitted caption classifier; ``match_image`` the image neighbours;
``match_model`` keeps a fitted classifier so a later run scores only what changed. docs/annotate.md
"Caption match level"."""

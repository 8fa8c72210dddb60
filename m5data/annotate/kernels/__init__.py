"""What more than one curation stage computes with: no stage of its own, no settings of its own.

- ``near`` / ``near_jit`` / ``key_runs`` / ``spec_jit``: pHash, MinHash/LSH and spec-agreement kernels;
- ``values``: spec values as compared; ``dedup_inputs``: products, images and specs as dedup (and
  the matcher's cascade) read them;
- ``pair_model`` / ``pair_features`` / ``pair_features_jit`` / ``char_grams_jit`` / ``pair_products`` /
  ``pair_text`` / ``trees_jit`` / ``errors``: the same-product matcher's pair features and its model as data, which
  the matcher trains and dedup applies;
- ``embed`` / ``search`` / ``reservoir``: embedders and the blocked top-k search (pools, match-level,
  the matcher's text embeddings).

A curation package (dedup, match_level, pools, crowd, matcher) imports these, never another curation
package (tests/contract/test_module_layers.py)."""

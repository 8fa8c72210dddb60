"""Thin SCALE (docs/train.md): train on the exported WebDataset shards, evaluate with the papers' protocol."""

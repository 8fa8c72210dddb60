"""The export stage: WebDataset shards, Hugging Face Parquet and the M5Product layout; check-shards; import."""

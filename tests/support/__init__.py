"""Helpers of the tests and benchmarks, kept out of the package (nothing in ``m5data`` imports them).

``tests/`` is on ``sys.path`` for pytest; a benchmark puts it there itself (``sys.path.insert(0, ROOT / "tests")``).

- ``media_server``: a local media server with fault routes (download tests, bench_download, bench_hostile_media);
- ``loopback``: a real Dask or Ray cluster on 127.0.0.1 as separate processes (flows tests, bench_flows);
- ``align_world``: a seeded two-platform catalogue with known alignment (align tests, bench_align);
- ``splits_store``: labelled products in a long-tailed set of categories (splits tests, bench_splits);
- ``train_shards``: shards in the export's layout for the training tests and bench_train;
- ``ui_world``: a demo store with match pools, and a worker's first pair (the labelling UI's tests);
- ``framecheck``: the kept video frames of a decode mode against the exact decode (SSIM, timestamp shift);
- ``mep3m_pairs``: the hand-labelled MEP-3M Chinese product pairs (benchmarks/data/mep3m_pairs/) and their records.
"""

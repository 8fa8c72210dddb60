"""Helpers of the tests and benchmarks, kept out of the package (nothing in ``m5data`` imports them).

``tests/`` is on ``sys.path`` for pytest; a benchmark puts it there itself (``sys.path.insert(0, ROOT / "tests")``).

- ``media_server``: a local media server with fault routes (download tests, bench_download, bench_hostile_media);
- ``loopback``: a real Dask or Ray cluster on 127.0.0.1 as separate processes (flows tests, bench_flows);
- ``align_world``: a seeded two-platform catalogue with known alignment (align tests, bench_align);
- ``splits_store``: labelled products in a long-tailed set of categories (splits tests, bench_splits);
- ``train_shards``: shards in the export's layout for the training tests and bench_train;
- ``ui_world``: a demo store with match pools, and a worker's first pair (the labelling UI's tests);
- ``framecheck``: the kept video frames of a decode mode against the exact decode (SSIM, timestamp shift);
- ``mep3m_pairs``: the hand-labelled MEP-3M Chinese product pairs (benchmarks/data/mep3m_pairs/) and their records;
- ``export_helpers``: a writable demo store with a split version, and an export folder read back (samples, written
  keys, shards, files) (export, takedown and opt-out tests, bench_export_finish);
- ``extract_media``: media files put into a store as downloaded rows, extract's test settings, a generated test video;
- ``import_layout``: a small m5product layout and the rows an import writes (importer tests, S3 import test);
- ``store_samples``, ``store_compare``, ``grow_store``: sample rows and queries, two stores compared table by table,
  a store grown by new and re-written products;
- ``crawl_server``, ``media_samples``, ``cli_inprocess``, ``cluster_probe``, ``browser``, ``tls_certs``,
  ``m5product_reference``: a local shop server, hostile media files, ``m5data ARGS`` in this process, a Dask
  cluster's sockets probed, headless Chromium, a CA and certificates, the M5Product finish kept as a reference.
"""

"""Crawl product pages into the store (Scrapy); their media are downloaded by ``m5data.download`` (aiohttp).

The crawl half, one module per job:

- ``items``: the item types a page parses into, text normalisation, product identity;
- ``extraction``: the generic layer's reading of a page (schema.org Product via extruct, OpenGraph,
  charset detection); ``generic_product``: the product it gives without a site adapter, prices parsed;
- ``adapters``: one small class per site for what a page does not publish as structured data;
- ``spider``: the Scrapy spider (start pages, sitemaps, pagination, scope, errors);
- ``pipeline``: the item pipeline that batches rows into ``products``, ``specs``, ``media``, ``crawl_errors``;
- ``crawl``: the stage function ``run(store, settings, ...)`` that runs Scrapy in a subprocess;
- ``child``: that subprocess (``python -m m5data.crawler.child JOB.json``);
- ``cli``: the ``m5data crawl`` verb.

Scrapy is imported only inside ``spider``, ``pipeline`` and the subprocess entry point, so that
importing this package (and ``m5data --help``) stays instant.
"""

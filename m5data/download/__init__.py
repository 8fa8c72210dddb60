"""The download stage: media URLs -> content-addressed blobs and one status row per URL (aiohttp).

Modules: ``sniff`` (magic bytes), ``safety`` (URL and address policy; ``addresses``, its rule for IP
addresses, shared with the crawl), ``fetch`` (the HTTP client:
limits, retries, deadlines, streaming; ``pace``, its rate guard; ``referer``, its Referer header),
``retry_after`` (the ``Retry-After`` header, also read by the crawl), ``resize`` (image re-encoding in a process pool),
``sources`` (URL lists from the command line), ``run`` (the stage function
``run.run(store, settings, ...)``; ``schedule``, its slots, status flushes and watchdog),
``cli`` (the ``m5data download`` verb).
See docs/download.md. Nothing is imported here, so mounting the CLI verb stays instant.
"""

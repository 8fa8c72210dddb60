"""The whole pipeline as one Prefect flow: crawl -> download -> extract -> align.

Every task is a thin wrapper over its stage's run function (see the sibling modules), so a flow run
does exactly what the CLI verbs do. Each task resumes: running the flow again (on a schedule, or
after a failure) crawls only new pages, fetches only media not yet ok and extracts only what has no
derived output yet.

Schedule it against a Prefect server (``prefect server start``, ``PREFECT_API_URL`` set), e.g.::

    from m5data.flows.pipeline import pipeline_flow
    pipeline_flow.serve(name="nightly", cron="0 3 * * *",
                        parameters={"store_path": "/data/store", "start_urls": ["https://shop.example/"]})
"""

from __future__ import annotations

from prefect import flow

from .align import align_task
from .crawl import crawl_task
from .download import download_task
from .extract import extract_task


@flow(name="m5data-pipeline")
def pipeline_flow(store_path: str, start_urls: list[str], mapping: str | None = None,
                  kinds: str = "video,audio,image,text", overrides: dict | None = None,
                  config_file: str | None = None) -> dict:
    """Crawl ``start_urls`` into the store, download and extract its media, then align its labels.

    Args:
        store_path: the store (created if missing).
        start_urls: listing pages, sitemaps or robots.txt URLs to crawl.
        mapping: the level-1 mapping file for align; without it align is skipped.
        kinds: what extract produces (video, audio, image, text).
        overrides: settings as ``{"section.key": value}`` (e.g. ``{"download.allow_private": True}``).
        config_file: a TOML settings file.

    Returns:
        Each stage's ``runs`` row, by stage name.
    """
    runs = {"crawl": crawl_task(store_path, start_urls, overrides=overrides, config_file=config_file)}
    runs["download"] = download_task(store_path, overrides=overrides, config_file=config_file)
    runs["extract"] = extract_task(store_path, kinds, overrides=overrides, config_file=config_file)
    if mapping:
        runs["align"] = align_task(store_path, mapping, overrides=overrides, config_file=config_file)
    return runs

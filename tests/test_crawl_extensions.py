"""The crawl's Scrapy runs no extension that opens a port: no telnet console, no remote control
(Scrapy 2.19's HTTP endpoint that runs Python code sent to it). Both are left out of the extensions
Scrapy builds, so it never imports them either (remote control imports aiohttp's web server)."""

from m5data import config as cfg
from m5data.crawler.crawl import build_settings


def test_the_crawl_builds_no_extension_that_listens(tmp_path):
    from scrapy.settings import Settings
    from scrapy.utils.conf import build_component_list

    settings = Settings(build_settings(cfg.load(None, {}, environ={}).crawl, store_path=str(tmp_path),
                                       compression="zstd", run_id="r1", resume=False,
                                       log_file=str(tmp_path / "crawl.log")))
    built = build_component_list(settings.getwithbase("EXTENSIONS"))  # what ExtensionManager loads, in order
    assert "scrapy.extensions.corestats.CoreStats" in built and "m5data.crawler.spider.ProgressReporter" in built
    assert not [path for path in built if "remote_control" in path or "telnet" in path], built
    assert settings.getbool("REMOTE_CONTROL_ENABLED") is False and settings.getbool("TELNETCONSOLE_ENABLED") is False

"""The crawl's subprocess: its Scrapy runs no extension that opens a port (no telnet console, no remote
control, Scrapy 2.19's HTTP endpoint that runs Python code sent to it; both left out of the extensions
Scrapy builds, so never imported either: not even aiohttp), and it never imports pandas."""

import subprocess
import sys


def test_the_crawl_builds_no_extension_that_listens_nor_imports_one(tmp_path):
    code = f"""
import sys
from scrapy.settings import Settings
from scrapy.utils.conf import build_component_list
from m5data import config as cfg
from m5data.crawler.child import without_listeners
from m5data.crawler.crawl import build_settings

settings = Settings(without_listeners(build_settings(cfg.load(None, {{}}, environ={{}}).crawl, store_path={str(tmp_path)!r},
                                                     compression="zstd", run_id="r1", resume=False,
                                                     log_file={str(tmp_path / "crawl.log")!r})))
built = build_component_list(settings.getwithbase("EXTENSIONS"))  # what ExtensionManager loads, in order
assert "scrapy.extensions.corestats.CoreStats" in built and "m5data.crawler.spider.ProgressReporter" in built
assert not [path for path in built if "remote_control" in path or "telnet" in path], built
assert settings.getbool("REMOTE_CONTROL_ENABLED") is False and settings.getbool("TELNETCONSOLE_ENABLED") is False
loaded = [m for m in sys.modules if m.startswith(("scrapy.extensions.remote_control", "scrapy.extensions.telnet", "aiohttp"))]
assert not loaded, loaded
print("ok")
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stdout + done.stderr


def test_the_crawl_subprocess_writes_rows_without_importing_pandas():
    """pyarrow's list converter imports pandas at a process's first rows; the subprocess refuses it, and
    a library that asked for pandas there would be told so (ModuleNotFoundError), not answered silently."""
    code = """
import sys
from m5data.crawler.child import refuse_pandas
refuse_pandas()
import pyarrow as pa
from m5data.storage.parts import conform
from m5data.storage.schema import TABLES
rows = conform(TABLES["specs"], [{"product_id": "p1", "position": 0, "property": "colour", "value": "红色"}])
assert rows.num_rows == 1 and rows.column("value").to_pylist() == ["红色"], rows
assert pa.array([1, None, 3]).null_count == 1
assert "pandas" not in sys.modules
try:
    import pandas  # noqa: F401
except ModuleNotFoundError as exc:
    assert "m5data.crawler.child" in str(exc), exc
else:
    raise AssertionError("pandas was imported")
print("ok")
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr[-2000:]

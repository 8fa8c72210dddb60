"""A hostile tdmrep.json neither hangs the crawl nor the download (issue 76, 4): a rule whose location
is ``*a*a*a*a*a*a*a*a$``, matched against a 300-letter path, backtracked for minutes in the regex the
location became. Locations are matched without regex now (m5data/optout.py), at most 1,000 rules of
at most 1,000 characters each are read (the rest logged as refused), and the crawl's subprocess ends
with its parent even while it computes. The runs below go through the command line in a subprocess
with a timeout the old code runs far past; no test asserts a time of its own."""

from __future__ import annotations

import json
import os
import random
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from support.crawl_server import Page, SiteServer, jsonld_shop
from support.media_server import jpeg_bytes, media_rows

ROOT = Path(__file__).resolve().parents[2]
LONG = "/" + "a" * 300  # every path of the shop below starts with it
HOSTILE = [{"location": "*a*a*a*a*a*a*a*a$", "tdm-reservation": 1},  # never matches: no path ends in "a"
           {"location": "/" + "x*" * 600, "tdm-reservation": 0},  # 1,201 characters: refused
           {"location": "*/SKU-0001.html*", "tdm-reservation": 1},
           {"location": "*/img/reserved.jpg$", "tdm-reservation": 1}]
HOSTILE += [{"location": f"/other/{i}", "tdm-reservation": 0} for i in range(1_100)]  # 103 past the cap


def _old_location_pattern(location: str) -> re.Pattern:
    """The location as the regex it used to become (the matcher's reference on short inputs)."""
    anchored = location.endswith("$")
    body = location[:-1] if anchored else location
    return re.compile("".join(".*" if ch == "*" else re.escape(ch) for ch in body) + ("$" if anchored else ""))


def test_location_matches_as_the_regex_did():
    from m5data.optout import location_matches

    rng = random.Random(76)
    for _ in range(30_000):
        location = "".join(rng.choice("ab*/$") for _ in range(rng.randint(0, 7)))
        path = "".join(rng.choice("ab/$") for _ in range(rng.randint(0, 9)))
        assert location_matches(location, path) == bool(_old_location_pattern(location).match(path)), (location, path)
    assert not location_matches("*a*a*a*a*a*a*a*a$", LONG + "b")  # at once (the regex: minutes)
    assert location_matches("*a*a*a*a*a*a*a*a$", LONG)


def test_rules_past_the_caps_are_refused_and_logged(caplog):
    from m5data.optout import TDMREP_MAX_LOCATION, TDMREP_MAX_RULES, tdm_optout, tdmrep_rules

    rules = tdmrep_rules(json.dumps(HOSTILE).encode())
    assert len(rules) == TDMREP_MAX_RULES == 1_000 and TDMREP_MAX_LOCATION == 1_000
    assert [r.location for r in rules[:3]] == [HOSTILE[0]["location"], HOSTILE[2]["location"], HOSTILE[3]["location"]]
    assert len(rules.refused) == 2
    assert "location over 1,000 characters" in rules.refused[0] and "(1,201)" in rules.refused[0]
    assert rules.refused[1] == "103 rules after the first 1,000 ignored"
    assert [r.getMessage() for r in caplog.records] == [f"tdmrep.json rule refused: {why}" for why in rules.refused]
    assert tdm_optout(None, None, rules, LONG + "/p/SKU-0000.html?ref=list1") is None
    assert tdm_optout(None, None, rules, LONG + "/p/SKU-0001.html?ref=list1").directive == \
        "tdm-reservation: 1 (location */SKU-0001.html*)"
    assert tdm_optout(None, None, rules, "/" + "a" * 5_000) is not None  # the hostile rule, when it matches


def _run(cmd: list[str], timeout: float = 60) -> subprocess.CompletedProcess:
    """``cmd`` in a session of its own, the whole session killed past ``timeout`` (the old code's
    crawl subprocess outlived its parent, busy in the regex)."""
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
                            cwd=ROOT)
    try:
        out, err = proc.communicate(timeout=timeout)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate()
    return subprocess.CompletedProcess(cmd, proc.returncode, out, err)


def test_crawl_of_a_shop_with_a_hostile_tdmrep_json_finishes(store):
    server = SiteServer({})
    skus = jsonld_shop(server, n_products=4, per_page=4, prefix=LONG)
    server.add("/.well-known/tdmrep.json", Page(json.dumps(HOSTILE).encode(), "application/json"))
    with server:
        done = _run([sys.executable, "-m", "m5data", "--store", str(store.root), "--set", "crawl.allow_private=true",
                     "crawl", "--start-url", server.url + LONG + "/list/1.html"])
    assert done.returncode == 0, done.stderr
    ids = {f"127.0.0.1:{sku}": i for i, sku in enumerate(skus)}
    assert {ids[r["product_id"]] for r in store.read("products").to_pylist()} == {0, 2, 3}
    (row,) = store.read("optouts").to_pylist()
    assert ids[row["product_id"]] == 1 and row["directive"] == "tdm-reservation: 1 (location */SKU-0001.html*)"
    (run,) = store.read("runs").to_pylist()
    assert run["status"] == "ok"
    log = (store.local_root() / "logs" / "crawl" / run["run_id"] / "crawl.log").read_text()
    assert "tdmrep.json rule refused: location over 1,000 characters" in log
    assert "tdmrep.json rule refused: 103 rules after the first 1,000 ignored" in log


def test_download_from_a_host_with_a_hostile_tdmrep_json_finishes(store):
    jpeg = jpeg_bytes(32, 24)
    server = SiteServer({f"{LONG}/img/{name}.jpg": Page(jpeg, "image/jpeg") for name in ("a", "b", "reserved")})
    server.add("/.well-known/tdmrep.json", Page(json.dumps(HOSTILE).encode(), "application/json"))
    with server:
        store.write("media", media_rows([f"{server.url}{LONG}/img/{name}.jpg" for name in ("a", "b", "reserved")]))
        done = _run([sys.executable, "-m", "m5data", "--store", str(store.root), "--set", "download.allow_private=true",
                     "--set", "download.retries=0", "download", "--no-progress", "--stall-timeout", "20"])
    assert done.returncode == 0, done.stderr
    status = {r["url"].rsplit("/", 1)[1]: r["status"] for r in store.read("media").to_pylist()}
    assert status == {"a.jpg": "ok", "b.jpg": "ok", "reserved.jpg": "opted_out"}
    (row,) = store.read("optouts").to_pylist()
    assert row["directive"] == "tdm-reservation: 1 (location */img/reserved.jpg$)"
    assert server.requests.count("/.well-known/tdmrep.json") == 1


ROBOTS = """
from protego import Protego
rules = "User-agent: *\\n" + "Disallow: *a*a*a*a*a*a*a*a$\\n" * 2_000 + "Disallow: /" + "x*" * 5_000 + "\\n"
robots = Protego.parse(rules)
print(all(robots.can_fetch("http://shop.test/" + "a" * n + "b", "m5data") for n in (300, 100_000)))
"""


def test_robots_txt_patterns_are_matched_in_linear_time():
    """The crawl and the download leave robots.txt to Protego: it must not backtrack either."""
    done = _run([sys.executable, "-c", ROBOTS])
    assert done.returncode == 0 and done.stdout.strip() == "True", done.stderr


BUSY_CHILD = """
import re, signal, sys
from m5data.crawler import child
child.PARENT_GONE_GRACE = 1.0
child._die_with_parent(int(sys.argv[1]))
signal.signal(signal.SIGTERM, lambda *_: None)  # as Scrapy's: it asks for a clean stop, after the call
print("busy", flush=True)
re.match(".*a" * 8 + "$", "a" * 300 + "b")  # one C call that holds the GIL for ages (the old tdmrep matcher's)
"""
PARENT = """
import subprocess, sys, os, time
child = subprocess.Popen([sys.executable, "-c", sys.argv[1], str(os.getpid())], stdout=subprocess.PIPE, text=True)
assert child.stdout.readline() == "busy\\n"
print(child.pid, flush=True)
time.sleep(600)
"""


def _gone(pid: int) -> bool:
    from m5data.lifeline import parent_of

    return parent_of(pid) is None


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux's")
@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM])
def test_the_crawl_subprocess_ends_with_its_parent_even_while_it_computes(sig):
    """The crawl's child, its parent killed (``timeout`` sends SIGTERM; SIGKILL) while the child is
    busy in one C call: the kernel's SIGTERM waits for a Python handler that never runs, the watcher's
    SIGKILL does not wait. (Old code: the child ran on until the test killed it.)"""
    parent = subprocess.Popen([sys.executable, "-c", PARENT, BUSY_CHILD], stdout=subprocess.PIPE, text=True,
                              cwd=ROOT, start_new_session=True)
    child = None
    try:
        child = int(parent.stdout.readline())
        os.kill(parent.pid, sig)
        parent.wait(timeout=30)
        deadline = time.monotonic() + 30
        while not _gone(child) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert _gone(child)
    finally:
        for pid in (parent.pid, child):
            if pid and not _gone(pid):
                os.kill(pid, signal.SIGKILL)

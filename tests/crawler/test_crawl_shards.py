"""The crawl's shards on a cluster are groups of hosts: one host's start URLs never in two shards."""

import pytest

from m5data.crawler.crawl import shard_start_urls


def test_every_host_lands_in_exactly_one_shard_and_shards_balance():
    urls = [f"https://a.example/list/{i}" for i in range(5)] + [f"https://b.example/list/{i}" for i in range(3)] + \
           ["https://c.example/", "https://d.example/sitemap.xml", "https://C.example/x"]
    shards = shard_start_urls(urls, 3)
    assert sorted(u for group in shards for u in group) == sorted(urls)  # nothing lost, nothing twice
    hosts = [{u.split("/")[2].lower() for u in group} for group in shards]
    assert all(not (x & y) for i, x in enumerate(hosts) for y in hosts[i + 1:])  # no host in two shards
    assert [len(g) for g in shards] == [5, 3, 3]  # a: 5 alone; b: 3; c (2, any case) + d (1)
    assert shard_start_urls(list(reversed(urls)), 3)[0] == shards[0][::-1]  # by URLs, not by their order


@pytest.mark.parametrize("n", [1, 2, 8])
def test_one_host_is_one_shard_whatever_the_count(n):
    urls = ["http://127.0.0.1:8000/shopa/", "http://127.0.0.1:8000/shopb/", "http://127.0.0.1:8000/sitemap.xml"]
    assert shard_start_urls(urls, n) == [urls]


def test_fewer_hosts_than_shards_gives_no_empty_shard():
    assert shard_start_urls(["http://x.test/", "http://y.test/"], 4) == [["http://x.test/"], ["http://y.test/"]]

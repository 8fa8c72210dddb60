"""Settings: defaults < TOML file < M5DATA_* env < flags, each value with its source, validated."""

import pytest

from m5data import config as cfg


def test_layers_override_in_order(tmp_path):
    (tmp_path / "m5data.toml").write_text('[download]\nconcurrency = 40\nper_host = 4\n[store]\npath = "/data/s"\n')
    env = {"M5DATA_DOWNLOAD_CONCURRENCY": "50", "M5DATA_CRAWL_OBEY_ROBOTS": "false"}
    s = cfg.load(environ=env, cwd=tmp_path, overrides={"download.per_host": "8"})
    assert s.download.concurrency == 50 and s.source("download.concurrency") == "env M5DATA_DOWNLOAD_CONCURRENCY"
    assert s.download.per_host == 8 and s.source("download.per_host") == "flag"
    assert s.store.path == "/data/s" and s.source("store.path") == str(tmp_path / "m5data.toml")
    assert s.crawl.obey_robots is False
    assert s.extract.n_fft == 1024 and s.source("extract.n_fft") == "default"


def test_explicit_config_file_and_missing_file(tmp_path):
    path = tmp_path / "other.toml"
    path.write_text("[align]\nlabel_threshold = 0.6\n")
    assert cfg.load(path, environ={}).align.label_threshold == 0.6
    with pytest.raises(cfg.ConfigError, match="not found"):
        cfg.load(tmp_path / "missing.toml", environ={})


@pytest.mark.parametrize("overrides, message", [
    ({"download.concurrency": "many"}, "expected int"),
    ({"download.concurrency": "0"}, "must be > 0"),
    ({"align.label_threshold": "1.5"}, r"in \[0, 1\]"),
    ({"download.per_host": "100"}, "cannot exceed"),
    ({"crawl.obey_robots": "maybe"}, "expected bool"),
    ({"store.compression": "lzma"}, "zstd, snappy"),
])
def test_bad_values_are_rejected_with_the_key(overrides, message):
    with pytest.raises(cfg.ConfigError, match=message):
        cfg.load(environ={}, overrides=overrides, cwd=None)


def test_unknown_keys_and_bad_toml(tmp_path):
    with pytest.raises(cfg.ConfigError, match="unknown config key 'download.speed'"):
        cfg.parse_assignments(["download.speed=3"])
    with pytest.raises(cfg.ConfigError, match="unknown config section"):
        cfg.load(environ={}, overrides={"nope.x": 1})
    bad = tmp_path / "bad.toml"
    bad.write_text("[download\n")
    with pytest.raises(cfg.ConfigError, match="not valid TOML"):
        cfg.load(bad, environ={})

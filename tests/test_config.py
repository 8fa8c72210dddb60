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


# ------------------------------------------------------------------ issue 10, defect 11
@pytest.mark.parametrize("value", ["nan", "inf", "-inf", "NaN", "1e999"])
def test_non_finite_floats_are_rejected(value):
    for key in ("download.backoff", "download.request_deadline", "extract.max_duration"):
        with pytest.raises(cfg.ConfigError, match=f"config {key}: expected a finite number"):
            cfg.load(environ={}, overrides={key: value})


def test_non_finite_float_in_a_toml_file_is_rejected(tmp_path):
    path = tmp_path / "m5data.toml"
    path.write_text("[download]\nbackoff = nan\n")
    with pytest.raises(cfg.ConfigError, match="download.backoff: expected a finite number"):
        cfg.load(path, environ={})


def test_mistyped_env_variable_warns_naming_the_closest_setting():
    s = cfg.load(environ={"M5DATA_DOWNLOAD_CONCURENCY": "8", "M5DATA_DOWNLOAD_RETRIES": "2", "PATH": "/bin"})
    assert s.download.retries == 2 and s.download.concurrency == 64
    assert len(s.warnings) == 1
    assert "M5DATA_DOWNLOAD_CONCURENCY" in s.warnings[0] and "M5DATA_DOWNLOAD_CONCURRENCY" in s.warnings[0]
    assert "download.concurrency" in s.warnings[0]


def test_mistyped_env_variable_is_shown_by_the_cli(tmp_path):
    import subprocess
    import sys

    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": ":".join(sys.path), "M5DATA_STORE_PART_ROW": "5"}
    proc = subprocess.run([sys.executable, "-m", "m5data", "config", "show"], capture_output=True, text=True,
                          env=env, cwd=tmp_path)
    assert proc.returncode == 0
    assert "M5DATA_STORE_PART_ROW" in proc.stderr and "M5DATA_STORE_PART_ROWS" in proc.stderr


def test_unknown_key_message_names_the_section_and_the_file(tmp_path):
    path = tmp_path / "m5data.toml"
    path.write_text("[download]\nconcurency = 3\n")
    with pytest.raises(cfg.ConfigError) as info:
        cfg.load(path, environ={})
    message = str(info.value)
    assert "section [download]" in message and str(path) in message and "did you mean 'concurrency'" in message
    with pytest.raises(cfg.ConfigError, match=r"section \[crawl\]"):
        cfg.parse_assignments(["crawl.delay=1"])

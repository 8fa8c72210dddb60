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


def test_each_curation_stage_has_its_section_without_the_prefix():
    s = cfg.load(environ={})
    assert {"dedup", "match_level", "pools", "crowd", "matcher"} <= set(cfg.sections())
    assert (s.dedup.phash_threshold, s.pools.k, s.match_level.folds, s.crowd.method, s.matcher.trees) == (6, 500, 5, "glad", 400)
    assert s.annotate.seed == 0 and not hasattr(s.annotate, "dedup_phash_threshold")


@pytest.mark.parametrize("layer", ["file", "env", "flag"])
def test_an_old_annotate_key_still_works_and_warns_naming_the_new_one(tmp_path, layer):
    """``annotate.dedup_phash_threshold`` (the key before each curation stage had its section) sets
    ``dedup.phash_threshold``, in a file, an environment variable or ``--set``, with a warning."""
    path, environ, overrides = None, {}, None
    if layer == "file":
        path = tmp_path / "m5data.toml"
        path.write_text("[annotate]\ndedup_phash_threshold = 4\nmatcher_trees = 50\nseed = 3\n")
    elif layer == "env":
        environ = {"M5DATA_ANNOTATE_DEDUP_PHASH_THRESHOLD": "4", "M5DATA_ANNOTATE_MATCHER_TREES": "50",
                   "M5DATA_ANNOTATE_SEED": "3"}
    else:
        overrides = cfg.parse_assignments(["annotate.dedup_phash_threshold=4", "annotate.matcher_trees=50",
                                           "annotate.seed=3"])
    s = cfg.load(path, overrides, environ=environ, cwd=tmp_path)
    assert (s.dedup.phash_threshold, s.matcher.trees, s.annotate.seed) == (4, 50, 3)
    assert s.source("dedup.phash_threshold") != "default"
    assert any(w.startswith("annotate.dedup_phash_threshold is now dedup.phash_threshold") for w in s.warnings), s.warnings
    assert any(w.startswith("annotate.matcher_trees is now matcher.trees") for w in s.warnings), s.warnings
    assert len(s.warnings) == 2, s.warnings  # annotate.seed stays where it is


def test_the_new_key_wins_over_an_old_one_in_the_same_layer(tmp_path):
    path = tmp_path / "m5data.toml"
    path.write_text("[annotate]\npool_k = 10\n\n[pools]\nk = 20\n")
    assert cfg.load(path, environ={}).pools.k == 20


def test_config_show_lists_the_curation_sections_and_warns_on_an_old_key(tmp_path):
    from typer.testing import CliRunner

    from m5data.cli import app

    result = CliRunner().invoke(app, ["config", "show", "dedup"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "dedup.phash_threshold" in result.output and "pools.k" not in result.output
    result = CliRunner().invoke(app, ["--set", "annotate.pool_k=7", "config", "show"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    for section in ("[dedup]", "[match_level]", "[pools]", "[crowd]", "[matcher]"):
        assert section in result.output or section.strip("[]") + "." in result.output
    assert "annotate.pool_k is now pools.k" in result.output


def test_flows_annotate_jobs_is_ignored_with_a_warning(tmp_path):
    """The annotate stage's job list is gone (its jobs are stages): a config that still sets it loads."""
    path = tmp_path / "old.toml"  # not the working directory's m5data.toml: each load below has one layer
    path.write_text('[flows]\nannotate_jobs = "dedup,pools"\n')
    for s in (cfg.load(path, environ={}), cfg.load(None, environ={"M5DATA_FLOWS_ANNOTATE_JOBS": "dedup"}, cwd=tmp_path),
              cfg.load(None, cfg.parse_assignments(["flows.annotate_jobs=dedup"]), environ={}, cwd=tmp_path)):
        assert len(s.warnings) == 1 and "flows.annotate_jobs" in s.warnings[0] and "flows.stages" in s.warnings[0]
        assert not hasattr(s.flows, "annotate_jobs")


def _toml(value) -> str:
    return str(value).lower() if isinstance(value, bool) else str(value) if isinstance(value, int) else f'"{value}"'


def _load_old_keys(moved: dict[str, tuple[str, object]], layer: str, tmp_path) -> cfg.Settings:
    """Settings loaded with each old key of ``moved`` (old key -> (new key, value)) set to its value in
    one ``layer`` (file, env or flag), asserted to have set its new key, with a warning naming it."""
    path, environ, overrides = None, {}, None
    if layer == "file":
        path = tmp_path / "old.toml"  # not the working directory's m5data.toml: one layer only
        by_section: dict[str, list[str]] = {}
        for old, (_, value) in moved.items():
            section, name = old.split(".")
            by_section.setdefault(section, []).append(f"{name} = {_toml(value)}")
        path.write_text("".join(f"[{s}]\n" + "\n".join(lines) + "\n" for s, lines in by_section.items()))
    elif layer == "env":
        environ = {cfg.env_name(old): str(value) for old, (_, value) in moved.items()}
    else:
        overrides = cfg.parse_assignments([f"{old}={value}" for old, (_, value) in moved.items()])
    s = cfg.load(path, overrides, environ=environ, cwd=tmp_path)
    for old, (new, value) in moved.items():
        section, name = new.split(".")
        assert getattr(getattr(s, section), name) == value, new
        assert s.source(new) != "default", new
        assert any(w.startswith(f"{old} is now {new}") for w in s.warnings), (old, s.warnings)
    return s


# [flows] keys that duplicated a stage's own setting, with the stage's key (issue 56: one route per setting)
FLOW_KEYS = {"flows.export_format": ("export.format", "parquet"), "flows.export_split": ("export.split", "query-c"),
             "flows.report_out": ("report.out", "rep"), "flows.train_shards": ("train.shards", "sh"),
             "flows.train_out": ("train.out", "run"), "flows.train_config": ("train.config", "paper"),
             "flows.train_epochs": ("train.epochs", 3), "flows.train_max_steps": ("train.max_steps", 7),
             "flows.kinds": ("extract.kinds", "image,text"), "flows.mapping": ("align.mapping", "m.toml")}


@pytest.mark.parametrize("layer", ["file", "env", "flag"])
def test_an_old_flows_key_sets_its_stage_key_and_warns_naming_it(tmp_path, layer):
    """``flows.export_format`` and the other stage settings of [flows] are the stage's own keys now; the old
    keys still work, in a file, an environment variable or ``--set``, each with a warning naming the new key."""
    s = _load_old_keys(FLOW_KEYS, layer, tmp_path)
    for old in FLOW_KEYS:
        assert not hasattr(s.flows, old.split(".")[1]), old
    assert len(s.warnings) == len(FLOW_KEYS), s.warnings


def test_every_moved_key_is_in_one_table():
    """One table lists every key that moved, the [annotate] prefixes and the [flows] duplicates alike."""
    table = cfg.moved_keys()
    assert table["annotate.dedup_phash_threshold"] == "dedup.phash_threshold"
    for old, (new, _) in FLOW_KEYS.items():
        assert table[old] == new and cfg.moved(old) == new
    for new in table.values():
        cfg._split_key(new)  # each new key exists


@pytest.mark.parametrize("key", ["train.seed", "run.seed"])
def test_a_setting_no_code_reads_is_ignored_with_a_warning(tmp_path, key):
    """``[train] seed`` and ``[run] seed`` were never read (training's seed is the model preset's, or --seed)."""
    section, name = key.split(".")
    path = tmp_path / "old.toml"
    path.write_text(f"[{section}]\n{name} = 3\n")
    for s in (cfg.load(path, environ={}), cfg.load(None, environ={cfg.env_name(key): "3"}, cwd=tmp_path),
              cfg.load(None, cfg.parse_assignments([f"{key}=3"]), environ={}, cwd=tmp_path)):
        assert len(s.warnings) == 1 and key in s.warnings[0] and "no longer read" in s.warnings[0], s.warnings
        assert key not in dict(s.items())


def test_config_show_lists_each_stage_key_in_its_own_section():
    from typer.testing import CliRunner

    from m5data.cli import app

    shown = {}
    for section in ("export", "report", "train", "extract", "align", "flows"):
        result = CliRunner().invoke(app, ["config", "show", section], env={"COLUMNS": "200"})
        assert result.exit_code == 0, result.output
        shown[section] = result.output
    for key in ("export.format", "export.split", "report.out", "train.shards", "train.max_steps", "extract.kinds",
                "align.mapping"):
        assert key in shown[key.split(".")[0]], key
    assert not any(f"flows.{name}" in shown["flows"] for name in ("export_format", "report_out", "train_out", "kinds",
                                                                   "mapping")), shown["flows"]
    assert "train.seed" not in shown["train"]
    assert CliRunner().invoke(app, ["config", "show", "run"]).exit_code == 2  # [run] held only the unread seed


# values two stages share, moved to a shared section (issue 77, 4: a stage reads its own section only)
SHARED_KEYS = {"crawl.user_agent": ("http.user_agent", "probe/2"),
               "extract.jieba_user_dict": ("text.jieba_user_dict", "words.txt"),
               "extract.strip_brackets": ("text.strip_brackets", True),
               "extract.max_caption_chars": ("text.max_caption_chars", 300),
               "extract.face_frames": ("faces.frames", "all"),
               "matcher.text_model": ("annotate.text_model", "model-dir"),
               "dedup.brand_property": ("annotate.brand_property", "Brand"),
               "align.review_file": ("review.file", "review.csv")}


@pytest.mark.parametrize("layer", ["file", "env", "flag"])
def test_an_old_key_of_a_shared_value_still_sets_the_shared_key(tmp_path, layer):
    """``crawl.user_agent`` is ``http.user_agent`` now (and the others of SHARED): an old config file, variable
    or ``--set`` still works, with a warning naming the new key."""
    _load_old_keys(SHARED_KEYS, layer, tmp_path)
    for old, (new, _) in SHARED_KEYS.items():
        assert cfg.moved(old) == new and cfg.moved_keys()[old] == new
    assert cfg.moved("annotate.dedup_brand_property") == "annotate.brand_property"  # moved twice: the last
    assert cfg.moved("annotate.matcher_text_model") == "annotate.text_model"


def test_an_old_and_a_new_shared_key_that_disagree_in_one_layer_are_an_error(tmp_path):
    """Both spellings in one file (or the flags) with different values: a ConfigError naming both; the same
    value is fine, and a later layer still wins over an earlier one as ever."""
    path = tmp_path / "both.toml"
    path.write_text('[crawl]\nuser_agent = "a/1"\n\n[http]\nuser_agent = "b/1"\n')
    with pytest.raises(cfg.ConfigError, match=r"crawl.user_agent = 'a/1' and http.user_agent = 'b/1' both set in .*both.toml"):
        cfg.load(path, environ={})
    with pytest.raises(cfg.ConfigError, match="give faces.frames only"):
        cfg.load(None, {"extract.face_frames": "all", "faces.frames": "changed"}, environ={}, cwd=tmp_path)
    path.write_text('[crawl]\nuser_agent = "a/1"\n\n[http]\nuser_agent = "a/1"\n')
    assert cfg.load(path, environ={}).http.user_agent == "a/1"
    s = cfg.load(path, {"http.user_agent": "c/1"}, environ={"M5DATA_HTTP_USER_AGENT": "d/1"})
    assert s.http.user_agent == "c/1" and s.source("http.user_agent") == "flag"

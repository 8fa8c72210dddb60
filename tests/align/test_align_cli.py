"""``m5data align``: tables, review file, --review, --score-against, one-line errors; the Prefect task."""

import csv
import re

import pytest
from support.align_world import make_world
from typer.testing import CliRunner

from m5data.cli import app
from m5data.storage import Store

runner = CliRunner()


@pytest.fixture(scope="module")
def shop(tmp_path_factory):
    root = tmp_path_factory.mktemp("align-cli")
    world = make_world(seed=2, n_classes=2, subs_per_class=6, titles_per_sub=120)
    store = Store.init(root / "store")
    store.write("products", world.products())
    return root, store, world.write_mapping(root / "mapping.toml"), world.write_truth(root / "truth.jsonl")


def m5(store, *args):
    return runner.invoke(app, ["--store", str(store.root), *args])


def value(output: str, measure: str) -> float:
    match = re.search(rf"{measure}\s*│\s*([0-9.]+)", output)
    assert match, output
    return float(match.group(1))


def test_align_scores_against_truth_and_reapplies_a_review(shop):
    root, store, mapping, truth = shop
    result = m5(store, "align", "--mapping", str(mapping), "--review-out", str(root / "review.csv"),
                "--score-against", str(truth))
    assert result.exit_code == 0, result.output
    assert value(result.output, "merge precision") >= 0.95
    assert 0 < value(result.output, "merge recall") <= 1
    assert store.count("taxonomy") > 2 and store.count("label_map") > 0
    with open(root / "review.csv", encoding="utf-8-sig") as fh:
        rows = list(csv.DictReader(fh))
    assert rows and {"s_label", "s_content", "decision", "review", "rename"} <= set(rows[0])
    again = m5(store, "align", "--mapping", str(mapping), "--review", str(root / "review.csv"),
               "--review-out", str(root / "review2.csv"))
    assert again.exit_code == 0, again.output
    assert value(again.output, "pairs scored this run") == 0
    assert value(again.output, "pairs from the review file") == len(rows)


@pytest.mark.parametrize("args,message", [
    (["--mapping", "/nonexistent/mapping.toml"], "level-1 mapping file not found"),
    (["--engine", "simtext", "--weighting", "counts"], "binary"),
    (["--engine", "fast"], "align.engine"),
    (["--review", "/nonexistent/review.csv"], "review file not found"),
])
def test_bad_options_fail_with_one_line(shop, args, message):
    root, store, mapping, _ = shop
    extra = [] if "--mapping" in args else ["--mapping", str(mapping)]
    result = m5(store, "align", *extra, *args, "--review-out", str(root / "bad.csv"))
    assert result.exit_code == 1
    assert message in result.output and "Traceback" not in result.output
    assert store.read("runs", where="stage = 'align' AND status <> 'ok'").num_rows == 0  # refused: no run, no row


def test_missing_mapping_is_explained(shop):
    _, store, _, _ = shop
    result = m5(store, "align")
    assert result.exit_code == 1 and "--mapping" in result.output


def test_align_task_runs_in_a_flow(shop, prefect_harness):
    from m5data.flows.executor import stage_flow

    root, store, mapping, _ = shop
    stats = stage_flow("align", str(store.root), overrides={"review.file": str(root / "flow.csv"),
                                                            "align.mapping": str(mapping)})
    assert stats.stage == "align" and stats.status == "ok"
    assert stats.details["unified_subclasses"] == store.read("taxonomy", where="level = 2").num_rows
    assert (root / "flow.csv").is_file()

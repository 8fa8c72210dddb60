"""``m5data demo``: generate the demo shop, serve it on 127.0.0.1 and run the pipeline flow against it.

One command, no network: the shop is generated (or reused), served on a free loopback port, and the
``pipeline`` Prefect flow (m5data/flows/pipeline.py) runs every stage over ``<out>/store``: crawl,
download, extract, align, then annotate, splits and export when those stages are installed. The
flow prints what ``m5data run`` prints (progress, a summary per stage, the flow run's id and
state); the demo then prints a final report of the store and three SQL queries to try.
"""

from __future__ import annotations

import json
import time
from dataclasses import replace
from pathlib import Path

import typer

from ..console import esc


def contact_products(products: int) -> int:
    """The listings ``m5data demo`` gives contact details (WorldConfig.contact_products): what its
    exports mask (docs/compliance.md)."""
    return max(1, min(5, products // 20))


def _shop_matches(shop: Path, products: int, seed: int) -> bool:
    manifest = shop / "truth" / "manifest.json"
    if not manifest.is_file() or not (shop / "site").is_dir():
        return False
    try:
        info = json.loads(manifest.read_text())
    except ValueError:
        return False
    config = info.get("config", {})
    return (config.get("seed") == seed and config.get("products") == products and bool(config.get("optouts"))
            and config.get("contact_products", 0) == contact_products(products) and bool(config.get("egress_cases")))


def demo(
    ctx: typer.Context,
    out: Path = typer.Option(Path("demo-out"), "--out", help="Folder for the generated shop and the store."),
    products: int = typer.Option(300, "--products", help="Products in the generated shop."),
    seed: int = typer.Option(0, "--seed", help="World seed (same seed, same shop)."),
    serve: bool = typer.Option(False, "--serve/--no-serve", help="Keep serving the shop after the run (Ctrl-C ends)."),
    train: bool = typer.Option(False, "--train/--no-train", help="Also train the small SCALE model on the shards (about a "
                                                                  "minute) and print its evaluation table."),
) -> None:
    """Generate the demo shop, serve it on 127.0.0.1, run the pipeline flow end to end and report."""
    from m5data import config as cfg
    from m5data.console import console, fail, warn
    from m5data.flows.launch import print_outcome, run_pipeline
    from m5data.flows.pipeline import PipelineError, check_plan
    from m5data.warm import beside_the_run

    from .generate import generate
    from .server import serve_in_thread
    from .world import WorldConfig

    started = time.perf_counter()
    out = out.absolute()
    shop, store = out / "shop", out / "store"
    console.rule("[bold]1. demo shop")
    if _shop_matches(shop, products, seed):
        console.print(f"reusing the shop in {esc(str(shop))} ({products} products, seed {seed})")
    else:
        t = time.perf_counter()
        with console.status(f"generating {products} products (seed {seed}) into {shop} ..."):
            generate(shop, config=WorldConfig(products=products, seed=seed, optouts=True,  # docs/compliance.md
                                              contact_products=contact_products(products), egress_cases=True))
        console.print(f"generated {esc(str(shop))} in {time.perf_counter() - t:.1f} s")

    root = ctx.find_root().obj or {}
    config_file = root.get("config")
    # the demo shop is on loopback, which download refuses unless allowed
    overrides = {**{k: v for k, v in root.get("overrides", {}).items() if v is not None and k != "store.path"},
                 "download.allow_private": True, "crawl.allow_private": True}
    with serve_in_thread(shop) as running:
        console.print(f"serving on [bold]{esc(running.url)}[/] (127.0.0.1 only)")
        try:
            given = {cfg.moved(key) or key for key in overrides}  # a --set of an old key (flows.report_out) counts
            demo = {"report.out": str(out / "report")}
            if train:  # about a minute on a quiet 2-core machine
                demo.update({"train.out": str(out / "train"), "train.epochs": 20, "train.max_steps": 80})
            overrides.update({key: value for key, value in demo.items() if key not in given})
            overrides["align.mapping"] = str((shop / "truth" / "level1_mapping.toml").absolute())  # the shop's own
            settings = cfg.load(config_file, {**overrides, "store.path": str(store)})
            for warning in settings.warnings:  # an old key (flows.report_out is now report.out)
                warn(warning)
            stages = settings.flows.stages + (",train" if train and "train" not in settings.flows.stages else "")
            plan = check_plan(settings, start_urls=[f"{running.url}/"], stages=stages)
        except (PipelineError, cfg.ConfigError) as exc:
            fail(str(exc))
        config_path = str(Path(config_file).absolute()) if config_file else None
        progress = settings.flows.runner == "local"
        with beside_the_run():  # a fresh install's numba kernels compiled on the cores the run leaves idle
            if running.server.later and "crawl" in plan.stages:
                # a product that opts out after it was stored (demo/cases.py): crawl, the shop flips it,
                # then the flow runs with the refresh crawl a nightly run would do
                console.rule("[bold]2. first crawl")
                first = run_pipeline(replace(plan, stages=["crawl"]), settings, overrides, config_path, progress=progress)
                print_outcome(first)
                if not first.ok:
                    fail(f"demo stopped: the first crawl ended {first.state} ({first.fatal or first.message})")
                running.opt_out_later()
                console.print(f"the shop now opts out {len(running.server.later)} product page(s) it served before "
                              "(X-Robots-Tag: noai): the flow's crawl is a refresh")
                plan = replace(plan, refresh=True)
            console.rule(f"[bold]2. pipeline flow: {', '.join(plan.stages)}")
            outcome = run_pipeline(plan, settings, overrides, config_path, progress=progress)
        print_outcome(outcome)
        console.rule("[bold]3. report")
        report(store, outcome)
        console.print(f"\ndemo took {time.perf_counter() - started:.0f} s")
        if not outcome.ok:
            fail(f"demo stopped: the pipeline flow ended {outcome.state} ({outcome.fatal or outcome.message})")
        if serve:
            console.print(f"serving {esc(running.url)} until Ctrl-C")
            try:
                while True:
                    time.sleep(3600)
            except KeyboardInterrupt:
                pass


QUERIES = (
    ("products per top category",
     "SELECT category_path[1] AS category, count(*) AS products FROM products GROUP BY 1 ORDER BY 2 DESC LIMIT 10"),
    ("the most common properties",
     "SELECT property, count(*) AS n, count(DISTINCT value) AS distinct_values FROM specs GROUP BY 1 ORDER BY 2 DESC LIMIT 10"),
    ("products with all five modalities",
     "SELECT count(*) FROM products WHERE has_image AND has_video AND has_caption AND has_specs"),
)


def _installed(module: str) -> bool:
    import importlib.util

    try:
        return importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:
        return False


def report(store_path: Path, outcome) -> None:
    """The demo's final report: products, media ok/failed, specs, taxonomy, splits, shards, queries to try."""
    from m5data.console import console
    from m5data.storage import Store

    from ..console import Table

    store = Store.open(store_path)
    con = store.connect()
    try:
        one = lambda sql: con.execute(sql).fetchone()  # noqa: E731
        products, platforms = one("SELECT count(*), count(DISTINCT platform) FROM products")
        media = con.execute("SELECT kind, count(*) FILTER (WHERE status = 'ok'), count(*) FILTER (WHERE status <> 'ok') "
                            "FROM media GROUP BY 1 ORDER BY 1").fetchall()
        specs, properties = one("SELECT count(*), count(DISTINCT property) FROM specs")
        levels = dict(con.execute("SELECT level, count(*) FROM taxonomy GROUP BY 1").fetchall())
        labelled = one("SELECT count(*) FROM products p JOIN label_map l ON l.platform = p.platform "
                       "AND l.raw_path = array_to_string(p.category_path, ' > ') WHERE l.class_id IS NOT NULL")[0]
        splits = con.execute("SELECT split, count(*) FROM splits WHERE version = (SELECT max(version) FROM splits) "
                             "GROUP BY 1 ORDER BY 1").fetchall()
        version = one("SELECT max(version) FROM splits")[0]
        opted = dict(con.execute("SELECT scope, count(*) FROM optouts GROUP BY 1").fetchall())
    finally:
        con.close()
    table = Table(title=f"store {store.root}", show_header=False)
    table.add_column("what")
    table.add_column("count", justify="right")
    table.add_column("note")
    table.add_row("products", f"{products:,}", f"{platforms} platforms")
    for kind, ok, bad in media:
        table.add_row(f"media {kind}", f"{ok:,} ok", f"{bad:,} failed or missing" if bad else "")
    table.add_row("spec rows", f"{specs:,}", f"{properties:,} distinct properties")
    table.add_row("opted out", f"{sum(opted.values()):,}", f"{opted.get('page', 0):,} product pages (not stored), "
                  f"{opted.get('media', 0):,} media files: the owners' X-Robots-Tag / TDMRep / robots metas and robots.txt "
                  "(docs/compliance.md)")
    table.add_row("taxonomy", " / ".join(f"{levels.get(n, 0):,}" for n in (1, 2, 3)),
                  f"classes / sub-classes / subsub-classes; {labelled:,} products labelled")
    if splits:
        table.add_row(f"splits {version}", f"{sum(n for _, n in splits):,}", ", ".join(f"{s} {n:,}" for s, n in splits))
    else:
        table.add_row("splits", "-", "not built (the splits stage is not installed)")
    shards = (outcome.results.get("export") or {}).get("details", {}) if outcome else {}
    where = next((str(v) for k, v in shards.items() if k in ("out", "out_dir", "path", "dir", "root")), None)
    table.add_row("shards", "-" if not where else "", where or "not exported (the export stage is not installed)")
    console.print(table)
    console.print("try:", style="bold")
    for title, sql in QUERIES:
        console.print(f"  # {title}\n  m5data --store {esc(str(store.root))} sql \"{esc(sql)}\"", highlight=False, soft_wrap=True)
    page = ((outcome.results.get("report") or {}).get("details", {}) if outcome else {}).get("index")
    if page:
        console.print(f"the HTML report: [bold]{esc(Path(page).resolve().as_uri())}[/]  (or: m5data --store {esc(str(store.root))} "
                      f"report --out {esc(str(Path(page).parent))} --open)", highlight=False, soft_wrap=True)
    elif _installed("m5data.report.cli"):
        console.print(f"  # the HTML report\n  m5data --store {store.root} report --open", highlight=False)
    trained = (outcome.results.get("train") or {}).get("details", {}) if outcome else {}
    if trained.get("metrics"):
        _print_metrics(trained)


def _print_metrics(trained: dict) -> None:
    """The trained model's coarse retrieval and probe accuracy, beside the random and text-only
    baselines (the full table is the run's metrics.md)."""
    from m5data.console import console, warn
    from m5data.train.config import MODALITIES

    from ..console import Table

    rows = trained["metrics"]
    cols = [c for c in ("coarse mAP@1", "coarse mAP@5", "coarse mAP@10", "accuracy") if any(c in r for r in rows)]
    table = Table(title=f"thin SCALE after {trained.get('steps')} steps: coarse retrieval and linear probe")
    table.add_column("model", no_wrap=True)
    table.add_column("modalities", overflow="fold")
    for c in cols:
        table.add_column(c.replace("coarse ", ""), justify="right", no_wrap=True)
    for r in rows:
        names = "all five" if r["modalities"] == "+".join(MODALITIES) else r["modalities"]
        table.add_row(r["model"], names, *("" if r.get(c) is None else f"{100 * r[c]:.1f}" for c in cols))
    console.print(table)
    for warning in trained.get("split_warnings", []):  # a split of a few products: scores that mean little
        warn(warning)
    console.print(f"all metrics (fine-grained retrieval, NMI, purity ...): {Path(trained.get('run', '.')) / 'metrics.md'}",
                  highlight=False, soft_wrap=True)
    first, last = trained.get("first", {}), trained.get("last", {})
    if first:
        console.print("losses, first -> last steps: " + ", ".join(f"{k} {first[k]:.3f} -> {last[k]:.3f}" for k in first))

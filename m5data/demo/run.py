"""``m5data demo``: generate the demo shop, serve it on 127.0.0.1 and run every stage against it.

Each stage runs through its own CLI verb in this process, so the demo prints exactly what a user
running the verbs by hand would see: progress bars, each stage's summary, and ``m5data stats``.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import typer


def _shop_matches(shop: Path, products: int, seed: int) -> bool:
    manifest = shop / "truth" / "manifest.json"
    if not manifest.is_file() or not (shop / "site").is_dir():
        return False
    try:
        info = json.loads(manifest.read_text())
    except ValueError:
        return False
    config = info.get("config", {})
    return config.get("seed") == seed and config.get("products") == products


def _verb(args: list[str]) -> int:
    """Run ``m5data ARGS`` in this process; returns its exit code."""
    from m5data.cli import app

    command = typer.main.get_command(app)
    try:
        result = command.main(args=args, prog_name="m5data", standalone_mode=False)
    except typer.Exit as exc:
        return exc.exit_code
    except SystemExit as exc:
        return int(exc.code or 0)
    return result if isinstance(result, int) else 0


def demo(
    ctx: typer.Context,
    out: Path = typer.Option(Path("demo-out"), "--out", help="Folder for the generated shop and the store."),
    products: int = typer.Option(300, "--products", help="Products in the generated shop."),
    seed: int = typer.Option(0, "--seed", help="World seed (same seed, same shop)."),
    serve: bool = typer.Option(False, "--serve/--no-serve", help="Keep serving the shop after the run (Ctrl-C ends)."),
) -> None:
    """Generate the demo shop, serve it on 127.0.0.1, then crawl, download, extract, align and show stats."""
    from m5data.console import console, fail

    from .generate import generate
    from .server import serve_in_thread

    out = out.absolute()
    shop, store = out / "shop", out / "store"
    console.rule("[bold]1. demo shop")
    if _shop_matches(shop, products, seed):
        console.print(f"reusing the shop in {shop} ({products} products, seed {seed})")
    else:
        t = time.perf_counter()
        with console.status(f"generating {products} products (seed {seed}) into {shop} ..."):
            generate(shop, products=products, seed=seed)
        console.print(f"generated {shop} in {time.perf_counter() - t:.1f} s")

    with serve_in_thread(shop) as running:
        console.print(f"serving on [bold]{running.url}[/] (127.0.0.1 only)")
        root = ctx.find_root().params
        base = ["--store", str(store), "--set", "download.allow_private=true"]
        if root.get("config"):
            base = ["--config", str(root["config"]), *base]
        for item in root.get("set_") or []:
            base += ["--set", item]
        steps = [
            ("2. store", ["init"]),
            ("3. crawl (Scrapy)", ["crawl", "--start-url", f"{running.url}/"]),
            ("4. download (aiohttp)", ["download"]),
            ("5. extract (ffmpeg, moviepy, librosa, Pillow, jieba)", ["extract"]),
            ("6. align (difflib + term-frequency cosine)",
             ["align", "--mapping", str(shop / "truth" / "level1_mapping.toml"), "--score-against", str(shop / "truth")]),
        ]
        for title, args in steps:
            console.rule(f"[bold]{title}")
            code = _verb([*base, *args])
            # download exits 1 when its failure rate passes the threshold: the demo shop's faults are
            # deliberate, so only a crash-level failure of another stage stops the demo.
            if code != 0 and args[0] != "download":
                fail(f"demo stopped: `m5data {' '.join(args)}` exited with {code}")
        console.rule("[bold]7. stats")
        _verb([*base, "stats"])
        console.print(f"\nstore: [bold]{store}[/]   try: m5data --store {store} sql \"SELECT property, count(*) FROM specs GROUP BY 1 ORDER BY 2 DESC LIMIT 10\"")
        if serve:
            console.print(f"serving {running.url} until Ctrl-C")
            try:
                while True:
                    time.sleep(3600)
            except KeyboardInterrupt:
                pass

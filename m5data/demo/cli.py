"""``m5data demo-shop generate|serve``: the demo shop's command line (heavy imports stay inside)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

app = typer.Typer(no_args_is_help=True, add_completion=False,
                  help="Generate and serve the demo shop (a synthetic two-platform store on 127.0.0.1).")


@app.command()
def generate(
    out: Path = typer.Option(Path("demo-shop"), "--out", "-o", help="Folder for site/, truth/ and serve.json."),
    products: int = typer.Option(300, "--products", "-n", help="Product pages over both platforms."),
    seed: int = typer.Option(0, "--seed", help="Same seed, same bytes."),
    subclasses: Optional[int] = typer.Option(None, help="Unified level-2 classes (default: from --products)."),
    workers: Optional[int] = typer.Option(None, help="Media render processes (default: CPU count)."),
    profile: str = typer.Option("demo", "--profile",
                                help="demo (the full-fidelity shop) or scale (a world for size: one small image "
                                     "per product, shared video clips, up to millions of products)."),
    video_share: float = typer.Option(0.05, "--video-share", help="scale: share of products with a video."),
    chunk_size: int = typer.Option(10_000, "--chunk-size", help="scale: products per chunk (unit of parallel work)."),
    site: bool = typer.Option(False, "--site", help="scale: also write the HTML pages (product, listing, index, "
                                                     "sitemaps: ~10 KB a product) so `serve` can serve it to a crawl."),
) -> None:
    """Write a demo shop: HTML, media, robots.txt, sitemaps and the ground truth."""
    import time

    from rich.console import Console

    from .generate import generate as run_generate
    from .truth import load_truth

    if profile not in ("demo", "scale"):
        Console(stderr=True).print(f"error: unknown --profile {profile!r} (demo or scale)", markup=False)
        raise typer.Exit(2)
    if profile == "scale":
        _generate_scale(out, products, seed, video_share, chunk_size, workers, site)
        return
    started, timings = time.perf_counter(), {}
    try:
        run_generate(out, products=products, seed=seed, subclasses=subclasses, workers=workers,
                     timings=timings)
    except (ValueError, FileExistsError) as exc:
        Console(stderr=True).print(f"[bold red]error:[/] {exc}")
        raise typer.Exit(1) from None
    counts = load_truth(out).manifest["counts"]
    Console().print(
        f"demo shop in [bold]{out}[/]: {counts['products']} products "
        f"({counts['products_by_platform']}), {counts['images']} images, {counts['videos']} videos, "
        f"{counts['listing_pages']} listing pages; {time.perf_counter() - started:.1f} s {timings}")


def _generate_scale(out: Path, products: int, seed: int, video_share: float, chunk_size: int,
                    workers: Optional[int], site: bool) -> None:
    import time

    from rich.console import Console

    from .scale import ScaleConfig
    from .scale.generate import generate_scale

    started, timings = time.perf_counter(), {}
    try:
        man = generate_scale(out, ScaleConfig(products=products, seed=seed, video_share=video_share,
                                              chunk_size=chunk_size), workers=workers, timings=timings)
        if site:
            from .scale.site import write_scale_site

            clock = time.perf_counter()
            pages = write_scale_site(out, workers=workers)
            timings["site"] = round(time.perf_counter() - clock, 3)
            man["counts"].update(pages)
    except (ValueError, FileExistsError) as exc:
        Console(stderr=True).print(f"error: {exc}", markup=False)
        raise typer.Exit(1) from None
    c, seconds = man["counts"], time.perf_counter() - started
    Console().print(
        f"scale world in {out}: {c['products']:,} products ({c['products_by_platform']}), {c['images']:,} images, "
        f"{c['videos']:,} videos, {c['leaf_categories_with_products']:,} leaf categories with products"
        + (f", {c['product_pages']:,} product and {c['listing_pages']:,} listing pages" if site else "") + "; "
        f"{seconds:.1f} s ({c['products'] / max(seconds, 1e-9):,.0f} products/s) {timings}", markup=False)


@app.command("build-store")
def build_store(
    world: Path = typer.Argument(..., help="A world written by `generate --profile scale`."),
    store: Path = typer.Option(..., "--store", "-s", help="A new store to write (it must hold no products)."),
    workers: Optional[int] = typer.Option(None, help="Processes (default: CPU count)."),
    base_url: str = typer.Option("http://127.0.0.1:8000", "--base-url",
                                 help="URL prefix the pages would have been crawled from."),
) -> None:
    """Write the store a crawl, download and extract of a scale world would have (no crawling)."""
    from rich.console import Console

    from .scale.store import build_scale_store

    try:
        out = build_scale_store(world, store, workers=workers, base_url=base_url)
    except (ValueError, FileExistsError, FileNotFoundError) as exc:
        Console(stderr=True).print(f"error: {exc}", markup=False)
        raise typer.Exit(1) from None
    Console().print(f"scale store in {store}: {out['products']:,} products, {out['specs']:,} specs, "
                    f"{out['media']:,} media rows, {out['captions']:,} captions; {out['seconds']:.1f} s", markup=False)


@app.command()
def serve(
    shop_dir: Path = typer.Argument(..., help="A folder written by `generate`."),
    port: int = typer.Option(8000, "--port", "-p", help="Port on 127.0.0.1."),
    slow_seconds: float = typer.Option(2.0, help="Delay of the URLs that answer slowly."),
) -> None:
    """Serve a generated demo shop on 127.0.0.1 until Ctrl-C."""
    from .server import serve as run_serve

    run_serve(shop_dir, port=port, slow_seconds=slow_seconds)


if __name__ == "__main__":
    app()

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
) -> None:
    """Write a demo shop: HTML, media, robots.txt, sitemaps and the ground truth."""
    import time

    from rich.console import Console

    from .generate import generate as run_generate
    from .truth import load_truth

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

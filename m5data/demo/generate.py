"""``generate(out_dir, products, seed)``: build a demo world and write its site, media and truth.

Layout of ``out_dir``::

    site/        the served root: HTML, media, robots.txt, sitemaps
    truth/       ground truth (never served): Parquet tables, level1_mapping.toml, manifest.json
    serve.json   the server's fault list (transient 500s, slow URLs, pages without a charset header)
"""

from __future__ import annotations

import logging
import shutil
import time
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .world import World, WorldConfig

log = logging.getLogger(__name__)


def _prepare(out: Path) -> None:
    """Empty a previous demo shop in ``out``; refuse to touch any other non-empty folder."""
    if out.exists() and any(out.iterdir()):
        if not (out / "truth" / "manifest.json").exists() and not (out / "serve.json").exists():
            raise FileExistsError(f"{out} is not empty and holds no demo shop; pick another --out")
        for name in ("site", "truth"):
            shutil.rmtree(out / name, ignore_errors=True)
        (out / "serve.json").unlink(missing_ok=True)
    out.mkdir(parents=True, exist_ok=True)


class PhaseClock:
    """Seconds spent per phase of one generator run, for its log line and its ``timings``:
    :meth:`lap` closes the phase that ran since the previous lap (or since the clock was made)."""

    def __init__(self) -> None:
        self.spent: dict[str, float] = {}
        self._at = time.perf_counter()

    def lap(self, name: str) -> None:
        now = time.perf_counter()
        self.spent[name] = round(now - self._at, 3)
        self._at = now


def media_jobs(world: World, site: Path) -> list[dict]:
    """One render job per planned media URL (dead links included: they render nothing)."""
    return [{"site": str(site), "url": m.url, "fault": m.fault, "render": m.render}
            for p in world.products for m in p.images + ([p.video] if p.video else [])]


def generate(out_dir: str | Path, products: int = 300, seed: int = 0, *,
             subclasses: int | None = None, workers: int | None = None,
             config: WorldConfig | None = None, timings: dict | None = None) -> Path:
    """Generate a demo shop into ``out_dir`` and return its path.

    Args:
        out_dir: folder for ``site/``, ``truth/`` and ``serve.json`` (replaced if it holds a shop).
        products: product pages over both platforms.
        seed: same seed, same bytes; another seed, another world.
        subclasses: unified level-2 classes (default: from ``products``).
        workers: media render processes (default: CPU count).
        config: a full ``WorldConfig`` (overrides products, seed and subclasses).
        timings: if given, filled with seconds per phase (world, pages, media, truth).
    """
    from . import cases, media, optouts, site, truth
    from .world import WorldConfig, build_world

    cfg = config or WorldConfig(products=products, seed=seed, subclasses=subclasses)
    cfg.validate()
    out = Path(out_dir)
    _prepare(out)
    clock = PhaseClock()
    world = build_world(cfg)
    clock.lap("world")
    pages, faults = site.write_site(world, out / "site")
    opted = optouts.apply(world, out / "site", faults) if cfg.optouts else None
    hard = cases.apply(world, out / "site", faults) if cfg.egress_cases else None
    clock.lap("pages")
    facts = media.render_all(media_jobs(world, out / "site"), workers)
    for p in world.products:
        for m in p.images + ([p.video] if p.video else []):
            if m.fault in ("transient_500", "slow"):
                faults[m.fault].append(m.url)
    site.write_serve_config(faults, out / "serve.json")
    clock.lap("media")
    man = truth.write_truth(world, pages, facts, out / "truth")
    if opted is not None:
        if hard is not None:  # the robots metas are page opt-outs too
            opted["pages"].update({pid: case["kind"] for pid, case in hard["pages"].items()})
        optouts.write_truth(opted, out / "truth")
    if hard is not None:
        cases.write_truth(hard, out / "truth")
    clock.lap("truth")
    log.info("demo shop: %d products in %s (%s)", man["counts"]["products"], out, clock.spent)
    if timings is not None:
        timings.update(clock.spent)
    return out

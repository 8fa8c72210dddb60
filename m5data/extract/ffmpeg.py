"""The ffmpeg tools every media job runs: where ffmpeg and ffprobe are, the MediaError a broken input
earns, and the short stderr tail kept of a failed run."""

from __future__ import annotations

import shutil

__all__ = ["STDERR_TAIL", "MediaError", "ffmpeg_exe", "ffprobe_exe", "tail"]

STDERR_TAIL = 800  # characters of ffmpeg's stderr kept in the error column


class MediaError(Exception):
    """A broken or unusable input. ``status`` is the media status it earns; ``reason`` a short category."""

    def __init__(self, reason: str, detail: str = "", status: str = "corrupt"):
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.status = status


def ffmpeg_exe() -> str:
    """``ffmpeg`` on PATH, else the static binary that imageio-ffmpeg ships."""
    found = shutil.which("ffmpeg")
    if found:
        return found
    import imageio_ffmpeg

    return imageio_ffmpeg.get_ffmpeg_exe()


def ffprobe_exe() -> str:
    """``ffprobe`` on PATH; it is required (imageio-ffmpeg ships no ffprobe)."""
    found = shutil.which("ffprobe")
    if not found:
        raise RuntimeError("ffprobe not found on PATH (install ffmpeg, e.g. apt-get install ffmpeg)")
    return found


def tail(text: str | bytes, limit: int = STDERR_TAIL) -> str:
    """The last ``limit`` characters of a process's output, on one line per message."""
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    # showinfo's per-frame lines and the stats line are noise next to the real error messages
    lines = [ln.strip() for ln in text.strip().splitlines()
             if ln.strip() and "Parsed_showinfo" not in ln and not ln.lstrip().startswith("frame=")]
    return " | ".join(lines)[-limit:]

"""A stage's last complete state: a small JSON file, ``derived/state/<stage>.json`` (the watermarks it
read, :mod:`.changes`, and a fingerprint of what else decides its result), written atomically only
when the stage completes: a killed run leaves the previous one."""

from __future__ import annotations

import json

STATE_DIR = "state"  # derived/state/<stage>.json


def state_file(stage: str) -> str:
    """The store's file (relative to its root) of ``stage``'s last complete state."""
    return f"derived/{STATE_DIR}/{stage}.json"


def load_state(store, stage: str) -> dict | None:
    """The state ``stage`` saved when it last completed (None: never, or unreadable: run in full)."""
    try:
        state = json.loads(store.read_text(state_file(stage)) or "null")
    except (OSError, ValueError):
        return None
    return state if isinstance(state, dict) and isinstance(state.get("watermarks"), dict) else None


def save_state(store, stage: str, watermarks: dict[str, int], inputs: str, **extra) -> None:
    """Record that ``stage`` completed over ``watermarks`` with ``inputs`` (atomic; call it last)."""
    state = {"stage": stage, "watermarks": {t: int(w) for t, w in watermarks.items()}, "inputs": inputs, **extra}
    store.write_text(state_file(stage), json.dumps(state, sort_keys=True, indent=1, default=str) + "\n")


def watermarks(store, tables) -> dict[str, int]:
    return {t: store.watermark(t) for t in tables}


def unchanged_since(state: dict | None, marks: dict[str, int], inputs: str) -> bool:
    """True when nothing a stage reads was written since ``state`` and its inputs are the same."""
    if state is None or state.get("inputs") != inputs:
        return False
    kept = state["watermarks"]
    return all(t in kept and marks[t] <= int(kept[t]) for t in marks)

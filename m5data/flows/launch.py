"""Run the pipeline flow from this process (``m5data run``, ``m5data demo``) and print what it did."""

from __future__ import annotations

from dataclasses import dataclass, field

STATUS_STYLE = {"ok": "green", "fatal": "bold red", "skipped": "yellow", "not run": "dim"}


@dataclass
class Outcome:
    """A finished pipeline flow run: its id, final state and each stage's entry."""

    flow_run_id: str
    state: str
    message: str
    results: dict = field(default_factory=dict)

    @property
    def fatal(self) -> str | None:
        return next((s for s, e in self.results.items() if e.get("status") == "fatal"), None)

    @property
    def ok(self) -> bool:
        return self.state == "Completed" and self.fatal is None


def run_pipeline(plan, settings, overrides: dict | None = None, config_file: str | None = None,
                 progress: bool = False) -> Outcome:
    """Run the ``pipeline`` flow for a checked ``plan`` (``flows.runner`` in ``overrides`` or the config picks the runner).

    Args:
        plan: from :func:`m5data.flows.pipeline.check_plan`.
        settings: the effective settings (the runner comes from ``flows``): the flow runs in this
            process and hands a copy (at the plan's absolute store path) to every task; they are
            not loaded again.
        overrides: settings overrides (``{"section.key": value}``) and ``config_file``: the flow's
            parameters, shown by the Prefect server (the settings themselves never go there).
        config_file: the TOML settings file.
        progress: show the verbs' progress bars.
    """
    import copy
    import uuid

    from .pipeline import _SETTINGS, pipeline_flow
    from .runners import api_for_workers

    handoff = uuid.uuid4().hex
    _SETTINGS[handoff] = copy.deepcopy(settings)
    _SETTINGS[handoff].set("store.path", plan.store_path, "flag")
    # the flow makes flows.runner's task runner itself (shards_flow); it and the workers share this API
    try:
        with api_for_workers(settings.flows.runner):
            state = pipeline_flow(**plan.parameters(overrides, config_file, progress), settings_handoff=handoff,
                                  return_state=True)
    finally:
        _SETTINGS.pop(handoff, None)
    results = state.result(raise_on_failure=False)
    if not isinstance(results, dict):  # the flow itself crashed: the exception is the result
        message = f"{type(results).__name__}: {results}" if isinstance(results, BaseException) else (state.message or "")
        return Outcome(str(state.state_details.flow_run_id), state.name, message, {})
    return Outcome(str(state.state_details.flow_run_id), state.name, state.message or "", results)


def summary_table(outcome: Outcome):
    """The per-stage summary of a run: status, in / out / failed, seconds, top failure reasons."""
    from rich.text import Text

    from ..console import Table

    table = Table(title=f"flow run {outcome.flow_run_id}: {outcome.state}")
    for col, justify in [("stage", "left"), ("status", "left"), ("in", "right"), ("out", "right"),
                         ("failed", "right"), ("seconds", "right"), ("failed by reason / note", "left")]:
        table.add_column(col, justify=justify, overflow="fold")
    for stage, e in outcome.results.items():
        top = sorted(e.get("failures", {}).items(), key=lambda kv: -kv[1])
        reasons = ", ".join(f"{r}: {n}" for r, n in top[:4]) + (f", ... ({len(top) - 4} more)" if len(top) > 4 else "")
        note = "; ".join(x for x in (reasons, e.get("message", "")) if x)
        style = STATUS_STYLE.get(e["status"], "")
        table.add_row(stage, Text(e["status"], style=style), f"{e.get('n_in', 0):,}",
                      f"{e.get('n_out', 0):,}", f"{e.get('n_failed', 0):,}", f"{e.get('seconds', 0):.1f}", note)
    return table


def print_outcome(outcome: Outcome) -> None:
    """Print the summary table and the final state line (its id, state and message are data: a path
    with ``[/x]`` or a setting with ``[bold red]`` is printed as it is, never read as markup)."""
    from ..console import console, esc

    console.print(summary_table(outcome))
    if outcome.ok:
        console.print(f"flow run [bold]{esc(outcome.flow_run_id)}[/]: [green]{esc(outcome.state)}[/]",
                      highlight=False, soft_wrap=True)
    else:
        why = outcome.message or (outcome.results.get(outcome.fatal, {}).get("message") if outcome.fatal else "")
        console.print(f"flow run [bold]{esc(outcome.flow_run_id)}[/]: [bold red]{esc(outcome.state)}[/]"
                      + (f": {esc(why)}" if why else ""), highlight=False, soft_wrap=True)

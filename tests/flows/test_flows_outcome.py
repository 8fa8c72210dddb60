"""``m5data run``'s outcome lines: a flow run's id, state and messages are data, never rich markup."""

import io


def test_run_outcome_lines_print_paths_and_messages_as_they_are():
    from rich.console import Console

    from m5data import console as console_module
    from m5data.flows.launch import Outcome, print_outcome

    buffer = io.StringIO()
    original = console_module.console
    console_module.console = Console(file=buffer, width=300, color_system=None)
    try:
        message = "crawl: no page under /data/[/x]/store: [bold red]x[/]"
        print_outcome(Outcome("run-1", "Failed", message, {"crawl": {"status": "fatal", "message": message}}))
        print_outcome(Outcome("run-[/x]", "Completed", "", {"crawl": {"status": "ok", "message": "[bold red]y[/]"}}))
        print_outcome(Outcome("run-2", "Failed", "", {"export": {"status": "fatal", "message": "[bold red]boom[/] at s3://b"}}))
    finally:
        console_module.console = original
    out = buffer.getvalue()
    assert f"flow run run-1: Failed: {message}" in out
    assert "flow run run-[/x]: Completed" in out
    assert "flow run run-2: Failed: [bold red]boom[/] at s3://b" in out

"""``m5data doctor [--repair] [--quick]``: one table of findings; exit 1 when something is wrong.

Exit codes: 0 nothing wrong (or, with --repair, everything wrong repaired); 1 problems remain;
1 also when --repair is refused because a stage is running (the message names its PID).
"""

from __future__ import annotations

import typer

from ..verbs import one_line_errors


def doctor(
    ctx: typer.Context,
    repair: bool = typer.Option(False, "--repair", help="Quarantine bad parts, return media with missing or wrong files "
                                "to pending, remove dead runs' temp files, rebuild the catalog."),
    quick: bool = typer.Option(False, "--quick", help="Check that blobs exist without hashing their content."),
    show_info: bool = typer.Option(False, "--all", help="Also list info findings (temp files of live runs, a stale catalog)."),
) -> None:
    """Check a store after a crash or a disk problem (parts, blobs, derived files, temp files, catalog)."""
    from ..config import as_dict
    from ..console import arrow_table, console, err_console, error
    from ..storage.doctor import INFO
    from ..verbs import open_store

    store, settings = open_store(ctx)
    with one_line_errors():
        with err_console.status("checking the store ...") if err_console.is_terminal else _Null() as status:
            def progress(step: str, done: int, total: int) -> None:
                if status is not None and hasattr(status, "update"):
                    status.update(f"checking {step}: {done:,} of {total:,}")

            report = run_doctor(store, as_dict(settings), repair=repair, verify_blobs=not quick, progress=progress)
    shown = [f for f in report.findings if show_info or f.severity != INFO]
    checked = ", ".join(f"{n:,} {what}" for what, n in report.checked.items())
    if shown:  # one table of findings (one block per finding when the terminal is too narrow)
        import pyarrow as pa

        action = [(("yes: " if f.repaired else "no: ") + f.repair) if repair else f.repair for f in shown]
        table = pa.table({"check": [f.check for f in shown], "severity": [f.severity for f in shown],
                          "path": [f.path for f in shown], "problem": [f.problem for f in shown],
                          "repaired" if repair else "repair": action})
        console.print(arrow_table(table, title=f"m5data doctor{' --repair' if repair else ''}: {store.root}",
                                  max_rows=10_000))
    problems = report.problems
    if not problems:
        console.print(f"[green]store ok[/] ({checked})")
        return
    left = [f for f in problems if not f.repaired]
    if repair and not left:
        console.print(f"[green]repaired {len(problems)} problem(s)[/] ({checked}); "
                      "run `m5data download` / `m5data extract` to fetch and make again what was reset")
        return
    hint = "" if repair else "; `m5data doctor --repair` fixes them"
    error(f"{len(left)} problem(s) in {store.root}{hint}")
    raise typer.Exit(1)


def run_doctor(store, config: dict | None = None, *, repair: bool = False, verify_blobs: bool = True, progress=None):
    """``storage.doctor.run`` and its ``runs`` row, written through the stage contract (the store's
    doctor is below it); a read-only store is still checked, with no row."""
    from ..stage_run import record
    from ..storage.doctor import run

    report = run(store, config, repair=repair, verify_blobs=verify_blobs, progress=progress)
    try:
        record(store, report.stats, report.config)
    except OSError:
        pass  # a read-only store can still be checked
    return report


class _Null:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

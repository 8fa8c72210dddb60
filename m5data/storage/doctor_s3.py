"""``m5data doctor`` on a store on object storage (``s3://bucket/prefix``): each table's whole log (a
damaged one is reported, never repaired; a checkpoint that disagrees with it is rewritten), its parts'
footers, and the part objects that no fold of the whole log holds live (uncommitted). Checking needs no lease: the commit log makes a killed
writer's objects invisible. ``--repair`` removes them only after ``store.garbage_grace`` seconds, and
only under leases: the store-wide repair lease ``locks/doctor`` (refused while any stage's lease lives;
no stage starts while it is held) and, per table swept, the table's lease (a compaction or replace in
progress keeps its uploaded parts: that table is skipped and said so), so a live writer's upload is
never touched, even one older than the grace. Blobs, derived files and the quarantine of a
damaged part on object storage: not yet (a damaged part is reported, not moved).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .doctor_findings import ERROR, INFO, WARNING, DoctorReport, Finding

if TYPE_CHECKING:
    from .s3store import S3Store


def check_object_store(store: S3Store, report: DoctorReport, repair: bool) -> None:
    if not repair:
        audited = store.audit()
        _check_groups(store, report, audited, False)
        _check_logs(store, report, audited, False)
        _check_footers(store, report, audited)
        _check_uncommitted(store, report, False, audited)
        return
    from .s3stages import repair_lease
    from .temps import sweep_scratch

    with repair_lease(store):  # refused while a stage runs; no stage starts while it repairs
        sweep_scratch()  # this machine's killed runs' local scratch (TMPDIR)
        audited = store.audit()
        if _check_groups(store, report, audited, True):
            audited = store.audit()  # the finished tables' logs have grown
        _check_logs(store, report, audited, True)
        _check_footers(store, report, audited)
        _check_uncommitted(store, report, True, audited)


def _check_groups(store: S3Store, report: DoctorReport, audited: dict, repair: bool) -> bool:
    """Tables whose part of a group rewrite (s3groups.py) is committed in the primary's log and not yet in
    their own (its writer killed or fenced half way): readers already see it; ``--repair`` commits it."""
    from .s3groups import finish, pending

    found = False
    for name, (state, _) in audited.items():
        if state is None or (group := pending(store, name, state)) is None:
            continue
        primary = state.lease["group"]
        finding = Finding("group", WARNING, store.log(name).objects.uri(f"tables/{name}/_log/"),
                          f"table {name}: its part of a rewrite with {primary} is committed in {primary}'s log, "
                          f"not yet in its own (the writer was stopped half way; readers see it)", "commit it")
        if repair:
            finish(store, name)
            finding.repair, finding.repaired, found = f"committed (group {group['id'][:12]})", True, True
        report.findings.append(finding)
    return found


def _check_logs(store: S3Store, report: DoctorReport, audited: dict, repair: bool) -> None:
    """Each table's whole log read (a damaged one: reported, never repaired: what its entries committed is
    unknown) and its checkpoint against it (one that disagrees: rewritten from the log)."""
    report.checked["table logs"] = len(audited)
    for name, (state, problems) in audited.items():
        for problem in problems:
            where, _, what = problem.partition(": ")
            if state is None:
                report.findings.append(Finding("log", ERROR, where, f"table {name}: {what}", (
                    "cannot repair: what the damaged entries committed is unknown; restore the object (bucket "
                    "versioning, a backup), then run doctor again. The table's parts are kept; its reads fail, "
                    "the other tables read")))
                continue
            finding = Finding("checkpoint", ERROR, where, f"table {name}: {what} (readers ignore it and read "
                              "the whole log)", "rewrite it from the log")
            if repair:
                store.log(name).rewrite_checkpoint(state)
                finding.repaired = True
            report.findings.append(finding)


def _check_footers(store: S3Store, report: DoctorReport, audited: dict) -> None:
    n = 0
    for name, (state, _) in audited.items():
        if state is None:  # a damaged log: reported by _check_logs
            continue
        for part in (store._uri(name, p) for p in sorted(state.parts)):
            n += 1
            problem = store._footer_problem(part)
            if problem is not None:
                report.findings.append(Finding("part", ERROR, part, f"table {name}: {problem}",
                                               "not yet on object storage: write the rows again, then compact"))
    report.checked["parts"] = n


def _check_uncommitted(store: S3Store, report: DoctorReport, repair: bool, audited: dict) -> None:
    found = store.uncommitted(audited)
    report.checked["uncommitted parts"] = len(found)
    grace = store.garbage_grace
    for rel, age in found:
        if age <= grace:
            report.findings.append(Finding("temp", INFO, rel, f"not committed, {age:.0f} s old: a running writer's, "
                                           f"or garbage after store.garbage_grace ({grace:g} s)", "kept"))
            continue
        report.findings.append(Finding("temp", WARNING, rel, f"not committed for {age:.0f} s (a killed writer's)",
                                       "remove"))
    if repair:
        busy: list[str] = []
        removed = set(store.sweep_garbage(grace, busy, audited))
        for finding in report.findings:
            if finding.check == "temp" and finding.path in removed:
                finding.repair, finding.repaired = "removed", True
            elif finding.check == "temp" and finding.severity == WARNING:
                table = finding.path.split("/")[1]
                why = next((b for b in busy if f"table {table} " in b), None)
                if why:
                    finding.repair = f"kept: {why}"

"""The runbook's phases as sequences of operations. Fixtures call these; each step is journalled
(intent, then result with evidence), acts only when the estate is not already so, and is verified by
re-reading the facts. A failure stops the phase with a message that says what happened and what to do."""
from __future__ import annotations

import base64
import hashlib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Callable, TypeVar

import pytest

from entsso import backup, biztalk, gate, services, sqlagent, sso
from entsso.biztalk import RULE_ENGINE
from entsso.estate import Snapshot
from entsso.poll import Poller, WaitTimedOut
from entsso.run import Baseline, Run
from entsso.sql import SqlError
from entsso.sso import ENTSSO
from entsso.winrm import RemoteError

T = TypeVar("T")


class PhaseFailed(Exception):
    pass


def stop(run: Run, phase: str, message: str) -> None:
    """End the phase: journal it and fail the fixture (every later phase depends on it, so nothing after
    it changes the estate)."""
    run.journal.write("phase_stopped", phase=phase, message=message,
                      resume=f"pytest --apply --resume {run.id}")
    run.stopped = (phase, message)
    pytest.fail(f"[{phase}] {message}\nWhen fixed, resume with: pytest --apply --resume {run.id}", pytrace=False)


def step(run: Run, phase: str, name: str, host: str | None, action: Callable[[], T], **intent: Any) -> T:
    """One operation: journal the intent, run it, journal the result (or the failure) and return it."""
    run.journal.intent(phase, name, host, **intent)
    try:
        result = action()
    except (RemoteError, SqlError, WaitTimedOut, backup.BackupFailed, LookupError, RuntimeError) as exc:
        run.journal.result(phase, name, host, "failed", error=str(exc))
        stop(run, phase, f"{name}{' on ' + host if host else ''} failed: {exc}")
        raise  # not reached: stop() raises
    run.journal.result(phase, name, host, "ok", evidence=result)
    return result


def on_hosts(hosts: list[str], work: Callable[[str], T]) -> list[T]:
    """Run per-host work concurrently; the first failure is re-raised after all have finished."""
    if not hosts:
        return []
    with ThreadPoolExecutor(max_workers=min(16, len(hosts))) as pool:
        futures = [pool.submit(work, h) for h in hosts]
        results, first_error = [], None
        for f in futures:
            try:
                results.append(f.result())
            except BaseException as exc:  # noqa: BLE001 - includes pytest's Failed from stop()
                first_error = first_error or exc
        if first_error:
            raise first_error
        return results


def poller(run: Run) -> Poller:
    return run.poller


def require_ready(run: Run, action: str) -> None:
    """The gate before the first change: the readiness checks hold and no test before this failed."""
    findings = gate.readiness(run.snapshot(), run)
    failed = list(run.failed_tests)
    if failed or findings:
        lines = [f"  - test failed: {t}" for t in failed] + [f"  - {f}" for f in findings]
        run.journal.write("gate_refused", action=action, failed_tests=failed, findings=[str(f) for f in findings])
        stop(run, "gate", f"refusing to {action}: the estate is not ready:\n" + "\n".join(lines)
             + "\nNothing was changed. Fix these, then run the gate again (pytest tests_pre).")


def _require(run: Run, phase: str, findings: list[gate.Finding]) -> None:
    findings = [f for f in findings if f]
    if findings:
        stop(run, phase, "the phase did not verify:\n" + "\n".join(f"  - {f}" for f in findings))


# --- phase 1 ------------------------------------------------------------------------------------------
def silence(run: Run, baseline: Baseline) -> Snapshot:
    timeouts = run.inventory.timeouts

    def server(host: str) -> None:
        instances = [(name, "Stopped") for name in baseline.host_instances.get(host, {})]
        step(run, "silence", "stop host instances", host,
             lambda: biztalk.ensure_host_instances(run.hosts[host], instances, timeouts.service_stop),
             host_instances=[n for n, _ in instances])
        step(run, "silence", "stop Rule Engine Update and ENTSSO", host,
             lambda: services.ensure_services(run.hosts[host], [(RULE_ENGINE, "Stopped"), (ENTSSO, "Stopped")],
                                              timeouts.service_stop))

    def jobs() -> None:
        for job in run.job_names:
            step(run, "silence", "disable job", None, lambda job=job: sqlagent.ensure_job_enabled(run.sql, job, False),
                 job=job)

    with ThreadPoolExecutor(max_workers=2) as pool:
        sql_work = pool.submit(jobs)
        on_hosts(run.biztalk_servers, server)
        sql_work.result()
    s = run.snapshot(fresh=True)
    _require(run, "silence",
             [gate.host_instance_stopped(s, srv, name) for srv, inst in baseline.host_instances.items() for name in inst]
             + [gate.service_stopped(s, b, RULE_ENGINE) for b in run.biztalk_servers]
             + [gate.service_stopped(s, b, ENTSSO) for b in run.biztalk_servers]
             + [gate.job_disabled(s, j) for j in run.job_names])
    return s


# --- phase 2 ------------------------------------------------------------------------------------------
def back_up_secret(run: Run, s: Snapshot) -> Snapshot:
    mss = run.primary_node()
    path = run.secret_backup_file()
    existing = gate.secret_backed_up(s, mss, run.change_started)
    if existing is not None:  # not yet backed up in this change
        cfg = run.inventory.secret_backup
        reminder = cfg.reminder.format(ticket=run.options.change_ticket or "", run=run.id)
        step(run, "backup", "back up the master secret", mss,
             lambda: sso.backup_secret(run.hosts[mss], path, run.inventory.secrets.secret_password, reminder),
             file=path)
    copy = step(run, "backup", "copy the secret backup off the node", mss, lambda: _copy_off_node(run, mss, path),
                file=path)
    s = run.snapshot(fresh=True)
    _require(run, "backup", [gate.secret_backed_up(s, mss, run.change_started)])
    if s.hosts[mss].secret_backup and s.hosts[mss].secret_backup.size != copy["size"]:
        stop(run, "backup", f"the off-node copy {copy['copy']} has {copy['size']} bytes but {path} on {mss} has "
             f"{s.hosts[mss].secret_backup.size}; copy it by hand before going on")
    return s


def _copy_off_node(run: Run, host: str, path: str) -> dict[str, Any]:
    doc = run.hosts[host].invoke("Read-File", {"path": path})
    data = base64.b64decode(doc["content_b64"])
    folder = Path(run.inventory.secret_backup.copy_folder or (Path("secret-backups") / run.id))
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / Path(path.replace("\\", "/")).name
    target.write_bytes(data)
    target.chmod(0o600)
    return {"copy": str(target), "size": len(data), "sha256": hashlib.sha256(data).hexdigest()}


def force_full_backup(run: Run, s: Snapshot) -> Snapshot:
    job = next((j for j in run.job_names if j.startswith("Backup BizTalk Server")), None)
    if job is None:
        stop(run, "backup", "no 'Backup BizTalk Server (…)' job in the inventory's job list; add it")
    step(run, "backup", "force a full BizTalk backup", None,
         lambda: backup.ensure_full_backup(run.sql, job, run.change_started, run.inventory.timeouts.backup_job,
                                           run.poller), job=job)
    s = run.snapshot(fresh=True)
    dbs = [d.database for d in s.sql.backups.databases] if s.sql.backups else []
    _require(run, "backup", [gate.full_backup_complete(s, d, run.change_started) for d in dbs]
             + [gate.force_flag_consumed(s)])
    return s

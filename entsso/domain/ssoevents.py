"""ENTSSO's events that say the master secret cannot be used or ENTSSO's account is wrong, read from each
node's Application log by Get-HostFacts (its `entsso_events` part). After a restore or a failover, one of
them since the change began means SSO on that node cannot do what the change needs of it, and the change stops
there (issue 28, item 1). The meanings are their sources'; docs/domain-notes.md lists them."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

# event id -> what it means, as its source says
MEANING = {
    10536: "SSO cannot decrypt the data (0x80090005, Bad Data): the restore-time defect of KB 3000847 (SSO v5), "
           "fixed by KB 3062831",
    10520: "a changed ENTSSO service account (Learn, \"Troubleshooting Enterprise Single Sign-On\")",
    10565: "a changed ENTSSO service account (Learn, \"Troubleshooting Enterprise Single Sign-On\")",
    10521: "a changed ENTSSO service account (Learn, \"Troubleshooting Enterprise Single Sign-On\")",
    11047: "\"Could not create SSOSQL\": after an upgrade, run `regasm SSOSQL.dll` (Learn, SSO event 11047; "
           "\"Upgrade to BizTalk Server 2016\", Appendix B)",
    10783: "listed by the field survey (shared/research/round3/anchors-bhm.md) among ENTSSO's failures; its "
           "meaning is in the event's own text",
}
EVENT_IDS = tuple(MEANING)
# how far back Get-HostFacts reads (hours): a change (with its resumes) fits well within it
LOOKBACK_HOURS = 24 * 14


@dataclass(frozen=True)
class SsoEvent:
    host: str
    id: int
    time_utc: datetime
    message: str

    def describe(self) -> str:
        first = self.message.strip().splitlines()[0] if self.message.strip() else ""
        at = self.time_utc.isoformat(timespec="seconds")
        return f"event {self.id} at {at} ({MEANING.get(self.id, '?')}): {first}"


def request() -> dict[str, Any]:
    """Get-HostFacts' `entsso_events` parameter."""
    return {"ids": list(EVENT_IDS), "hours": LOOKBACK_HOURS}


def parse_events(host: str, doc: dict[str, Any]) -> tuple[tuple[SsoEvent, ...] | None, str | None]:
    """The events read (None: not read) and why they could not be read."""
    part = doc.get("entsso_events")
    if not isinstance(part, dict):
        return None, None
    out = []
    for e in part.get("events") or []:
        when = datetime.fromisoformat(str(e["time_utc"]).replace("Z", "+00:00"))
        out.append(SsoEvent(host, int(e["id"]), when, str(e.get("message") or "")))
    # Get-WinEvent answers "no events" as an error (FullyQualifiedErrorId NoMatchingEventsFound…): none read
    if str(part.get("error_id") or "").startswith("NoMatchingEventsFound"):
        return tuple(out), None
    return tuple(out), part.get("error")


def since(events: tuple[SsoEvent, ...] | None, start: datetime) -> list[SsoEvent]:
    """The events at or after `start` (aware UTC), oldest first."""
    return sorted((e for e in events or () if e.time_utc >= start), key=lambda e: e.time_utc)


# the secret-age warning ENTSSO logs (its id is not published; its words are, in biztalknotes, 2016-11-22:
# "ESSO master secret has exceeded one year. It is recommended that this key be updated after a one year
# lifetime"): found among ENTSSO's warnings by those words
SECRET_AGE_WORDS = "master secret has exceeded one year"
WARNINGS_LOOKBACK_HOURS = 24 * 8


def warnings_request() -> dict[str, Any]:
    """Get-HostFacts' `entsso_warnings` parameter: ENTSSO's warnings (level 3) of the last days, any id."""
    return {"hours": WARNINGS_LOOKBACK_HOURS}


def secret_age_warning(host: str, doc: dict[str, Any]) -> SsoEvent | None:
    """The newest ENTSSO warning that says the master secret is older than a year, from the raw warnings read."""
    part = doc.get("entsso_warnings")
    if not isinstance(part, dict):
        return None
    for e in part.get("events") or []:  # newest first, as Get-WinEvent returns them
        message = " ".join(str(e.get("message") or "").split())
        if SECRET_AGE_WORDS in message.lower():
            when = datetime.fromisoformat(str(e["time_utc"]).replace("Z", "+00:00"))
            return SsoEvent(host, int(e.get("id") or 0), when, message)
    return None

"""What is known of an SSO build's hotfix level (issue 28, item 1), as a table of version families with their
sources (docs/domain-notes.md, "The hotfix level"). KB 3000847's defect — a restore of the master secret after
which SSO "cannot decrypt the data" (event 10536) — is in SSO version 5 (BizTalk Server 2013 R2, Host
Integration Server 2013), fixed by KB 3062831 (which supersedes 3000847's own fix, which leaks memory). The
builds that carry either fix are not published in any source at hand: for an SSO v5 build the suite says it
cannot tell, and asks the operator to confirm the fix; a family the table does not know is said so."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Family:
    prefix: str  # the ENTSSO.exe file version's first two parts
    name: str
    restore_defect: bool  # in KB 3000847's scope (SSO v5)
    source: str


FAMILIES = (
    Family("9.0", "SSO version 5 (BizTalk Server 2013 / 2013 R2, Host Integration Server 2013)", True,
           "KB 2908466 (9.0.1865.0: BizTalk Server 2013; 9.0.2096.0: HIS 2013); KB 3000847 (SSO v5: BizTalk Server "
           "2013 R2, HIS 2013); KB 3062831"),
    Family("10.0", "the SSO of BizTalk Server 2016 and later", False,
           "KB 2908466 / shared domain notes (10.0.1000.0: BizTalk Server 2016); KB 3000847 applies to SSO v5 only"),
)
FIX = "KB 3062831"


def family(version: str | None) -> Family | None:
    parts = (version or "").split(".")
    prefix = ".".join(parts[:2])
    return next((f for f in FAMILIES if f.prefix == prefix), None)


def hotfix_note(host: str, version: str | None) -> str | None:
    """What the operator must know of this build before the change restores the master secret on it; None when
    the table says the build is outside the defect's scope."""
    if not version:
        return None
    fam = family(version)
    if fam is None:
        return (f"{host}: SSO {version} is a build this suite's table does not know, so its hotfix level is not "
                f"judged (KB 3000847's restore defect is known in SSO v5 only; source: {FAMILIES[0].source})")
    if not fam.restore_defect:
        return None
    return (f"{host}: SSO {version} is {fam.name}, in KB 3000847's scope: after a restore of the master secret (this "
            f"change restores it on every node in phase 5) SSO may be unable to decrypt (event 10536). The builds "
            f"that carry the fix are not published, so the suite cannot tell whether this one has it: confirm that "
            f"{FIX} (or a later cumulative update that includes it) is installed on every node before phase 1. The "
            f"event-log read after each restore stops the change if the defect shows. Source: {fam.source}")

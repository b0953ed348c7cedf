"""One finding per cause (issue 25): when hosts fail the same way — WinRM credentials refused, a name that
does not resolve, a certificate refused — or SQL Server refuses the login, the gate says the cause once,
naming the inventory field or environment variable and the fix; the checks it blocked are skipped with a
pointer to it and listed once in the verdict. A SQL login failure is a login failure, never "not
reachable"."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from entsso.estate.checks.readiness import sql_down
from entsso.estate.snapshot import Snapshot

# what the cluster's checks say when no node answered (the cluster unread, not absent)
CLUSTER_UNREAD = ("found no cluster node answered", ": found not readable (", "found no such resource",
                  "found no such group")
WINRM_KINDS = ("credentials", "dns", "certificate")
SQL_KINDS = ("login failed", "certificate not trusted", "Kerberos", "permission denied")


@dataclass
class Cause:
    kind: str
    subjects: tuple[str, ...]  # the hosts it stopped answering ("SQL Server" for SQL)
    text: str  # the one finding: what, where, the inventory field or variable, the fix
    markers: tuple[str, ...]  # text a failure it caused carries (the hosts' or SQL's own error)
    reported_by: str | None = None  # the test whose failure says it
    blocked: list[str] = field(default_factory=list)  # the checks it blocked (skipped)

    def caused(self, text: str) -> bool:
        folded = text.casefold()
        return any(m and m.casefold() in folded for m in self.markers)


def _field_of(inventory: Any, host: str) -> str:
    for i, n in enumerate(inventory.cluster.nodes):
        if n.name == host:
            return f"cluster.nodes[{i}].address"
    for i, b in enumerate(inventory.biztalk_servers):
        if b.name == host:
            return f"biztalk_servers[{i}].address"
    return "its address"


def _names(hosts: list[str]) -> str:
    return hosts[0] if len(hosts) == 1 else ", ".join(hosts[:-1]) + " and " + hosts[-1]


def _short(name: str | None) -> str:
    return (name or "").split(".")[0].casefold()


def name_mismatches(inventory: Any, s: Snapshot) -> list[Cause]:
    """Where the names the estate reports disagree with the inventory's: the cluster's name as SSODB, the
    SSO tools and the BizTalk group use it; a host's own name at the address the inventory gives. Each is
    one cause whose fix is the inventory's field — never a command naming what the estate has not shown."""
    out: list[Cause] = []
    nodes = {_short(n.name) for n in inventory.cluster.nodes}
    view = s.cluster_view()
    nodes |= {_short(n.name) for n in view.nodes} if view else set()
    own = {_short(h.computer_name) for h in s.hosts.values() if h.computer_name}
    for i, n in enumerate([*inventory.cluster.nodes, *inventory.biztalk_servers]):
        h = s.hosts.get(n.name)
        if h is None or not h.reachable or not h.computer_name or _short(h.computer_name) == _short(n.name):
            continue
        where = (f"cluster.nodes[{i}].name" if i < len(inventory.cluster.nodes)
                 else f"biztalk_servers[{i - len(inventory.cluster.nodes)}].name")
        out.append(Cause("name", (n.name,), f"the inventory names {n.name}, the host at its address "
                         f"({n.address}) calls itself {h.computer_name}: check `{where}` in the inventory",
                         (n.name, h.computer_name)))
    wanted = inventory.cluster.network_name
    said: dict[str, list[str]] = {}
    if s.sql.reachable and s.sql.secret_server:
        said.setdefault(_short(s.sql.secret_server), []).append("SSODB's master secret server")
    if s.sql.reachable and s.sql.group_sso_server:
        said.setdefault(_short(s.sql.group_sso_server), []).append("the BizTalk group's SSO server")
    for h in s.hosts.values():
        if h.reachable and h.sso and h.sso.tools_server:
            said.setdefault(_short(h.sso.tools_server), []).append(f"the SSO tools on {h.name}")
    others = {k: v for k, v in said.items() if k not in nodes | own and k != _short(wanted)}
    if _short(wanted) not in said and others:
        name, sources = max(others.items(), key=lambda kv: len(kv[1]))
        shown = next(x for x in [s.sql.secret_server, s.sql.group_sso_server,
                                 *(h.sso.tools_server for h in s.hosts.values() if h.reachable and h.sso)]
                     if x and _short(x) == name)
        out.append(Cause("name", (wanted,), f"the inventory names {wanted}, the estate calls it {shown} "
                         f"({', '.join(sources[:3])}{' …' if len(sources) > 3 else ''}): check "
                         "`cluster.network_name` in the inventory", (wanted, shown)))
    return out


def find(inventory: Any, s: Snapshot) -> list[Cause]:
    """The causes the estate's first read shows, each once: names that disagree first."""
    out: list[Cause] = name_mismatches(inventory, s)
    down = [h for h in s.hosts.values() if not h.reachable]
    for kind in WINRM_KINDS:
        hosts = [h for h in down if h.error_kind == kind]
        if not hosts:
            continue
        names = [h.name for h in hosts]
        every = "every host" if len(hosts) == len(s.hosts) and len(hosts) > 1 else _names(names)
        w = inventory.winrm
        if kind == "credentials" and w.transport in ("kerberos", "credssp"):
            text = (f"WinRM ({w.transport}) authentication as {w.username} failed on {every}: check the admin "
                    "box's Kerberos ticket (klist; kinit user@REALM renews it) and winrm.username in the inventory")
        elif kind == "credentials":
            where = (f"the environment variable {w.password_env} (winrm.password_env in the inventory)"
                     if w.password_env else "the password typed at the prompt")
            text = (f"WinRM credentials refused by {every} (HTTP 401): the password in {where} or the account "
                    f"winrm.username ({w.username}) is wrong, or the account may not use WinRM there; fix it and "
                    "run the same command again")
        elif kind == "dns":
            text = ("the name does not resolve (DNS): " + "; ".join(
                f"{h.name}'s address {_address(inventory, h.name)} ({_field_of(inventory, h.name)})" for h in hosts)
                + ": correct it in the inventory, or the admin box's DNS (nslookup NAME); nothing was sent to "
                + ("them" if len(hosts) > 1 else "it"))
        else:
            text = (f"{every} presented a WinRM certificate this machine refuses: check winrm.ca_trust_path in the "
                    "inventory (the PEM file of the CA that issued the hosts' certificates; python -m entsso doctor "
                    "checks it)")
        markers = tuple(h.error or "" for h in hosts) + tuple(f"{n}: found no answer ({kind}" for n in names) + \
            tuple(f"{n}: found a name that does not resolve" for n in names if kind == "dns") + \
            tuple(f"{n}: found an HTTPS certificate this machine refuses" for n in names if kind == "certificate")
        if set(inventory_nodes(inventory)) <= set(names):  # no node answered: the cluster's checks read nothing
            markers += CLUSTER_UNREAD
        out.append(Cause(kind, tuple(names), text, markers))
    if not s.sql.reachable and s.sql.error_kind in SQL_KINDS:
        q = inventory.sql
        if s.sql.error_kind == "login failed":
            who = (f"the SQL login {q.username} (sql.username) with the password in the environment variable "
                   f"{q.password_env} (sql.password_env)" if q.auth == "sql" and q.password_env else
                   f"the SQL login {q.username} (sql.username)" if q.auth == "sql" else
                   "the WinRM account's Windows login (sql.auth: kerberos)")
            text = (f"SQL Server {q.server} refused the login (error 18456, login failed): {who} is wrong or not "
                    "allowed; fix it and run the same command again. SQL Server itself answered")
        else:
            text = f"SQL Server {q.server}: {s.sql.error}"
        markers = (s.sql.error or "", "SQL Server not reachable", f"no answer ({s.sql.error_kind})", sql_down(s),
                   "found no such SQL Agent job")  # SQL Server unread: no job is seen
        out.append(Cause(s.sql.error_kind or "sql", ("SQL Server",), text, markers))
    return out


def inventory_nodes(inventory: Any) -> list[str]:
    return [n.name for n in inventory.cluster.nodes]


def _address(inventory: Any, host: str) -> str:
    for h in [*inventory.cluster.nodes, *inventory.biztalk_servers]:
        if h.name == host:
            return str(h.address)
    return host


def sentence(causes: list[Cause]) -> str:
    """The causes for the verdict: each once, with the checks it blocked."""
    parts = []
    for c in causes:
        blocked = len(c.blocked) + (1 if c.reported_by else 0)
        names = ", ".join(b.split("::")[-1] for b in c.blocked[:6]) + (" …" if len(c.blocked) > 6 else "")
        parts.append(f"One cause: {c.text}." + (f" It blocked {blocked} check(s)" + (f" ({names})" if names else "")
                                                + "." if blocked else ""))
    return " ".join(parts)

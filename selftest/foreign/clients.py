"""Foreign TDS clients for the selftests: Microsoft's JavaScript driver tedious (run with node from
selftest/foreign/node, installed by scripts/bootstrap.sh with `npm ci`) and python-tds (pytds, from the
`test` extra). Neither shares code with the suite: they witness that the lab's SQL endpoint answers as SQL
Server does. Each function takes where the server is, as an operator would give it to the client."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

NODE_DIR = Path(__file__).resolve().parent / "node"


@dataclass(frozen=True)
class Server:
    address: str
    port: int
    name: str  # the name in its certificate
    user: str
    password: str
    ca_file: str
    database: str = "SSODB"


def tedious_missing() -> str | None:
    """Why tedious cannot run here, or None."""
    if shutil.which("node") is None:
        return "node is not installed (scripts/bootstrap.sh installs nodejs and npm)"
    if not (NODE_DIR / "node_modules" / "tedious").is_dir():
        return f"tedious is not installed in {NODE_DIR} (scripts/bootstrap.sh runs npm ci there)"
    return None


def tedious(server: Server, checks: list[str], *, job: str = "", other_ca: str = "",
            statements: list[str] | None = None, timeout: float = 60) -> dict[str, Any]:
    """Run the named checks of selftest/foreign/node/checks.js; what tedious saw, by check."""
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "TDS_SERVER": server.address, "TDS_PORT": str(server.port),
           "TDS_SERVER_NAME": server.name, "TDS_USER": server.user, "TDS_PASSWORD": server.password,
           "TDS_DATABASE": server.database, "TDS_CA_FILE": server.ca_file, "TDS_OTHER_CA_FILE": other_ca,
           "TDS_JOB": job, "TDS_CHECKS": ",".join(checks), "TDS_STATEMENTS": json.dumps(statements or []),
           "NODE_NO_WARNINGS": "1"}
    proc = subprocess.run(["node", str(NODE_DIR / "checks.js")], cwd=NODE_DIR, env=env, capture_output=True,
                          text=True, timeout=timeout)
    if proc.returncode != 0 or not proc.stdout.strip():
        raise AssertionError(f"tedious' checks failed (exit {proc.returncode}): {proc.stdout}{proc.stderr}")
    out: dict[str, Any] = json.loads(proc.stdout)
    return out


def pytds_connect(server: Server, *, password: str | None = None, ca_file: str | None = None,
                  timeout: float | None = None) -> Any:
    """A python-tds connection in autocommit, TLS validated against `ca_file` (the lab's CA by default).
    The certificate's chain is validated; its host name is not: pytds 1.17's host check calls
    X509.get_extension, which pyOpenSSL 25 removed."""
    import pytds

    return pytds.connect(dsn=server.address, port=server.port, user=server.user,
                         password=server.password if password is None else password, database=server.database,
                         cafile=ca_file or server.ca_file, validate_host=False, autocommit=True, timeout=timeout,
                         login_timeout=10)

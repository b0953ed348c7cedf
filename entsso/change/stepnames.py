"""The runbook's step names, once: the runbook journals them, the plan lists them, a resumed change matches
them and the report reads them. Journals carry them, so a name never changes: selftest/e2e/test_frozen.py
holds them to the names 45684ed journalled."""
from __future__ import annotations

from entsso.domain.backup import FORCE_FULL_STEP

FORCE_FULL_BACKUP = FORCE_FULL_STEP  # phase 2's proof is found in the journal by this name
RECORD_CHANGE = "record the change and its baseline on the estate"
STOP_HOST_INSTANCES = "stop host instances"
STOP_RULE_ENGINE_AND_ENTSSO = "stop Rule Engine Update and ENTSSO"
DISABLE_JOB = "disable job"
STOP_RUNNING_JOBS = "stop the jobs still running"
BACK_UP_SECRET = "back up the master secret"
COPY_SECRET_OFF_NODE = "copy the secret backup off the node"
READ_BACK_SECRET_BACKUP = "read the secret backup back through SSO"
TOOLS_AT_CLUSTER_NAME = "point the primary's SSO tools at the cluster name"
TAKE_CLUSTER_RESOURCE_OFFLINE = "take the ENTSSO cluster resource offline"
START_ENTSSO_ON_PRIMARY = "start ENTSSO on the primary through the SCM"
TOOLS_AT_ITSELF = "point the primary's SSO tools at itself"
START_ENTSSO = "start ENTSSO through the SCM"
WAIT_FOR_OPERATOR = "wait for the operator's upgrade"
INSTALL_PACKAGE = "install the SSO update package"
RESTART_NODE = "restart the node"
WAIT_FOR_RESTART = "wait for the node to come back"
STOP_SCM_ENTSSO = "stop the SCM-started ENTSSO"
TAKE_RESOURCE_OFFLINE = "take the ENTSSO resource offline"
BRING_RESOURCE_ONLINE = "bring the ENTSSO resource online"
PUT_BACKUP_ON_NODE = "put this change's secret backup on the node"
RESTORE_SECRET = "restore the master secret"
LIST_HANDLERS = "list the adapter handlers from BizTalkMgmtDb"
READ_HANDLERS = "read the adapter handlers' properties through SSO"
START_SERVICES_AS_BEFORE = "start ENTSSO and Rule Engine Update as before"
START_HOST_INSTANCES = "start the host instances that ran"
REENABLE_JOB = "re-enable job"
ALREADY_UPGRADED = "upgrade SSO"  # journalled as unchanged when a node already runs the target
_MOVE_GROUP = "move the SSO group to "


def move_secret_server_to(node: str) -> str:
    return f"move the master secret server to {node}"


def move_secret_server_back_to(name: str) -> str:
    return f"move the master secret server back to {name}"


def tools_at(server: str) -> str:
    return f"point SSO tools at {server}"


def move_group_to(node: str) -> str:
    return f"{_MOVE_GROUP}{node}"


def move_group_back_to(node: str) -> str:
    return f"move the SSO group back to {node}"


def record_phase_done(number: int | str) -> str:
    return f"record phase {number} done on the estate"


def mark_change(status: str) -> str:
    return f"mark the change {status} on the estate"


def is_move_group(step: str) -> bool:
    """A move of phase 6 to a node (not a move back to a safe node, which proves nothing of the node)."""
    return step.startswith(_MOVE_GROUP)


# issue 26: the cluster's topology
TAKE_CLUSTERED_HOSTS_OFFLINE = "take the clustered host instances offline through the cluster"
STOP_NODE_HOST_INSTANCES = "stop the host instances outside the cluster"
BRING_CLUSTERED_HOSTS_ONLINE = "bring the clustered host instances online through the cluster"
START_NODE_HOST_INSTANCES = "start the host instances outside the cluster that ran"
RETAKE_ESTATE_LOCK = "take the estate lock again after SQL Server moved"
WAIT_FOR_SQL = "wait for SQL Server to answer on its new node"

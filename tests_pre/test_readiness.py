"""Readiness: what holds on a live estate before the change window (runbook phase 0)."""
import pytest

from entsso.estate import checks as gate

pytestmark = pytest.mark.readiness


def test_host_answers_over_winrm(estate, sso_host, judge):
    judge(gate.host_reachable(estate, sso_host), estate.hosts[sso_host])


def test_host_clock_agrees_with_sql_server(estate, sso_host, judge):
    judge(gate.clock_agrees(estate, sso_host), {"skew_sec": gate.skews(estate).get(sso_host)})


def test_sql_server_answers(estate, judge):
    judge(gate.sql_reachable(estate), estate.sql)


def test_sql_login_has_the_grants_the_run_needs(estate, run, judge):
    judge(gate.sql_grants(estate, run.inventory.sql.username), {"missing": estate.sql.missing_grants})


def test_cluster_is_a_topology_microsoft_documents(estate, run, judge):
    judge(gate.topology_known(estate, run), run.topology)


def test_cluster_node_is_up(estate, node, judge):
    judge(gate.node_up(estate, node), estate.cluster_view())


def test_node_is_a_possible_owner_of_the_entsso_resource(estate, node, run, judge):
    judge(gate.possible_owner(estate, node, run), estate.cluster_view())


def test_cluster_witness_online(estate, judge):
    judge(gate.quorum_safe(estate), estate.cluster_view())


def test_sso_group_does_not_fail_back_on_its_own(estate, run, judge):
    judge(gate.no_failback(estate, run), estate.cluster_view())


def test_no_sso_server_outside_the_inventory_shares_ssodb(estate, run, judge):
    judge(gate.no_unlisted_sso_servers(estate, run), {"registered": estate.sql.sso_servers})


def test_biztalk_groups_sso_server_is_the_cluster(estate, run, judge):
    judge(gate.group_sso_server_is_cluster(estate, run), {"group_sso_server": estate.sql.group_sso_server})


def test_primary_owns_the_sso_group(estate, run, judge):
    judge(gate.primary_owns_group(estate, run), estate.cluster_view())


def test_sso_group_is_online(estate, run, judge):
    judge(gate.group_online(estate, run), estate.cluster_view())


def test_entsso_resource_is_online_as_generic_service(estate, run, judge):
    judge(gate.resource_online(estate, run), estate.cluster_view())


def test_ssodb_names_the_cluster_as_secret_server(estate, run, judge):
    judge(gate.ssodb_names_cluster(estate, run), {"gi_SecretServer": estate.sql.secret_server})


def test_sso_server_uses_the_cluster_name(estate, sso_host, run, judge):
    judge(gate.sso_server_uses_cluster(estate, sso_host, run), estate.hosts[sso_host].sso)


def test_node_holds_the_master_secret(estate, node, judge):
    judge(gate.node_holds_secret(estate, node), estate.hosts[node].sso)


def test_update_package_in_place_and_newer(estate, node, run, judge):
    judge(gate.package_ready(estate, node, run),
          {"package": estate.hosts[node].package, "installed": estate.hosts[node].sso,
           "target_version": run.target_version(node), "mode": run.upgrade_mode(node)})


def test_secret_backup_folder_writable(estate, node, judge):
    judge(gate.backup_folder_writable(estate, node), estate.hosts[node].backup_folder)


def test_nothing_half_done_on_node(estate, node, run, judge):
    judge(gate.not_half_done(estate, node, run),
          {"entsso": estate.hosts[node].service("ENTSSO"), "sso": estate.hosts[node].sso})


def test_sql_server_agent_running(estate, judge):
    judge(gate.sql_agent_running(estate), {"agent": estate.sql.agent, "error": estate.sql.agent_error})


def test_each_database_on_the_instance_the_backup_job_names(estate, judge):
    judge(gate.sql_instances_match(estate),
          {"view": [(d.database, d.server) for d in (estate.sql.backups.databases if estate.sql.backups else ())],
           "misplaced": [str(m) for m in estate.sql.misplaced]})


def test_biztalk_job_not_running(estate, job, run, judge):
    judge(gate.job_idle(estate, job, run.inventory.sql.continuous_jobs, run.inventory.sql.backup_job),
          estate.sql.jobs.get(job))


def test_force_full_flag_found_in_the_management_database(estate, judge):
    judge(gate.force_full_flag_found(estate), estate.sql.backups)


@pytest.mark.change_guard
def test_no_other_change_unfinished_on_the_estate(estate, run, judge):
    findings = gate.no_unfinished_change(estate, run.options.change_ticket, run.inventory_command)
    judge(findings[0] if findings else None, [r.describe() for r in estate.change_records()])


def test_no_stale_secret_backup_of_this_changes_name_on_the_primary(estate, run, judge):
    node = run.primary_node()
    judge(gate.no_stale_secret_backup(estate, run),
          {"secret_backup": estate.hosts[node].secret_backup, "change_started": run.change_started})


def test_no_restart_pending_on_node(estate, node, judge):
    judge(gate.no_pending_restart(estate, node), {"pending_restart": list(estate.hosts[node].pending_restart)})


def test_entsso_logs_on_as_one_domain_account_on_every_node(estate, node, run, judge):
    judge(gate.entsso_account(estate, node, run),
          {"logon_account": estate.hosts[node].service("ENTSSO").logon_account,
           "sso_admin_group": estate.sql.sso_admin_group,
           "membership": "not read (a second hop to the domain); ENTSSO running on the owner under this account "
                         "shows it was an SSO administrator at its last start"})


def test_ssodb_names_its_sso_administrators_group(estate, judge):
    judge(gate.sso_admin_group_known(estate), {"gi_SSOAdminGroup": estate.sql.sso_admin_group})


def test_entsso_start_type_manual_on_node(estate, node, judge):
    judge(gate.entsso_start_manual(estate, node), estate.hosts[node].service("ENTSSO"))


def test_sso_server_not_newer_than_the_master_secret_servers_target(estate, biztalk_server, run, judge):
    judge(gate.sso_not_newer_than_mss(estate, biztalk_server, run),
          {"installed": estate.hosts[biztalk_server].sso, "mss_target": gate.mss_target(run),
           "registered_in_ssodb": estate.sql.sso_servers})


def test_biztalk_job_healthy_as_kb_952555_expects(estate, job, run, judge):
    judge(gate.job_healthy(estate, job, run.inventory.sql.continuous_jobs), estate.sql.jobs.get(job))


def test_msdtc_allows_network_transactions_with_its_own_cid_on_node(estate, node, run, judge):
    judge(gate.msdtc_ready(estate, node, run), estate.hosts[node].msdtc)


def test_no_entsso_alarm_on_node_since_the_change_began(estate, node, run, judge):
    judge(gate.no_entsso_alarm(estate, node, run),
          {"since": run.change_started, "events": [e.describe() for e in estate.hosts[node].entsso_events or ()]})

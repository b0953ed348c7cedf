"""An example of a site's own checks (docs/site-checks.md): ordinary pytest tests with testinfra's `host`
fixture. The suite runs each once per host of the estate in the gate, before anything changes, and
again after the change; both appear in the change's report. Keep them read-only: they run before the
change window's first step, and again with BizTalk back in service.

Only the cmd.exe side of testinfra's WinRM backend is used here (host.run, host.check_output,
host.run_expect): docs/site-checks.md says which of testinfra's Windows modules work and which do not.
"""


def test_the_host_answers_to_its_own_name(host):
    assert host.check_output("hostname").strip().upper() == host.estate_name.upper()


def test_enterprise_sso_is_installed(host):
    # sc query: the Service Control Manager's own answer; exit code 1060 would mean "no such service"
    out = host.run_expect([0], "sc query ENTSSO").stdout
    assert "SERVICE_NAME: ENTSSO" in out


def test_the_change_account_is_the_one_we_expect(host):
    # the WinRM account the inventory names (a site would pin its own service account here)
    assert host.check_output("whoami").strip().lower().endswith("\\svc-entsso")

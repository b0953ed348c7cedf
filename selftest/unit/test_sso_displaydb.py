"""How the `ssomanage -displaydb` parser treats what the transcripts do not cover: exit codes, stderr,
text in no known form (it raises, naming the tool and showing the text) and what Get-HostFacts reports."""
from __future__ import annotations

import pytest

from entsso.domain import sso
from entsso.domain.sso import UnknownToolOutput, parse_displaydb

CPR = "Using SSO server on this computer\r\nSQL Server : SQL1\r\nSSO database : SSODB\r\nSSO secret server name : NODE1\r\n"
ERROR = ("Using SSO server : NODE1\r\nERROR: 0xC0002A0F : Could not contact the SSO server 'NODE1'. Check that SSO "
         "is configured and that the SSO service is running on that server. (RPC: 0x800706BA: The RPC server is "
         "unavailable.)\r\n")


@pytest.mark.parametrize("exit_code", [0, 1, -1])
def test_an_error_line_is_an_error_whatever_the_exit_code(exit_code):
    db = parse_displaydb(ERROR, "", exit_code)
    assert db.failed and db.error_code == "0xC0002A0F" and db.secret_server is None


def test_an_error_on_stderr_is_read_too():
    db = parse_displaydb("Using SSO server : NODE1\r\n", ERROR.split("\r\n", 1)[1], 1)
    assert db.error_code == "0xC0002A0F" and db.sso_server == "NODE1"


def test_a_wrapped_error_message_is_joined_into_one_line():
    db = parse_displaydb("ERROR: 0xC0002A0F : Could not contact the SSO server 'SSO-CLUSTER'. Check that\r\n"
                         "SSO is configured and that the SSO service is running on that server.\r\n\r\n"
                         "(RPC: 0x800706D9: There are no more endpoints available from the endpoint\r\nmapper.)\r\n")
    assert db.error.endswith("running on that server. (RPC: 0x800706D9: There are no more endpoints available "
                             "from the endpoint mapper.)")


def test_padding_around_the_colon_does_not_change_the_values():
    padded = CPR.replace(" : ", "      :   ").replace("\r\n", "   \r\n")
    assert parse_displaydb(padded).secret_server == "NODE1"
    assert parse_displaydb(padded).sql_server == "SQL1"


def test_settings_with_a_failing_exit_code_are_refused():
    with pytest.raises(UnknownToolOutput, match="exit code is not 0"):
        parse_displaydb(CPR, "", 5)


@pytest.mark.parametrize("text, why", [
    ("", "no settings and no ERROR line"),
    ("Secret Server Name: NODE1\r\n", "no secret server row"),
    ("Usage: ssomanage -displaydb\r\n  -- display the SSO database\r\n", "in no known form"),
])
def test_text_in_no_known_form_raises_naming_the_tool_and_showing_the_text(text, why):
    with pytest.raises(UnknownToolOutput) as info:
        parse_displaydb(text, "", 0)
    message = str(info.value)
    assert message.startswith("ssomanage -displaydb printed text this suite does not recognise")
    assert why in message and repr(text)[1:-1][:20] in message


def test_host_facts_carry_the_unknown_text_as_the_displaydb_error_not_none_silently():
    doc = {"sso": {"installed": True, "displaydb": {"exit_code": 0, "stdout": "Secret Server Name: NODE1\r\n",
                                                   "stderr": "", "run_error": None}}}
    s = sso.parse_sso("NODE1", doc)
    assert s.secret_server is None
    assert "Secret Server Name: NODE1" in s.displaydb_error and "ssomanage -displaydb" in s.displaydb_error


def test_host_facts_read_the_secret_server_from_the_raw_displaydb_text():
    doc = {"sso": {"installed": True, "displaydb": {"exit_code": 0, "stdout": CPR, "stderr": "", "run_error": None}}}
    s = sso.parse_sso("NODE1", doc)
    assert (s.secret_server, s.displaydb_error) == ("NODE1", None)


def test_host_facts_report_the_error_line_when_ssomanage_fails():
    doc = {"sso": {"installed": True, "displaydb": {"exit_code": 0, "stdout": ERROR, "stderr": "", "run_error": None}}}
    s = sso.parse_sso("NODE1", doc)
    assert s.secret_server is None and s.displaydb_error.startswith("ERROR: 0xC0002A0F : Could not contact")


def test_host_facts_say_why_ssomanage_could_not_run():
    doc = {"sso": {"installed": True, "displaydb": {"exit_code": None, "stdout": "", "stderr": "",
                                                   "run_error": "'C:\\x\\ssomanage.exe' is missing on NODE1"}}}
    assert "could not run: 'C:\\x\\ssomanage.exe' is missing" in sso.parse_sso("NODE1", doc).displaydb_error


def test_sso_servers_outside_the_inventory_are_those_no_host_or_cluster_name_matches_by_first_label():
    registered = ["bts1.contoso.local", "his1.contoso.local", "node1", "ssocluster", "btsb1"]
    assert sso.unlisted_servers(registered, ["NODE1", "NODE2", "BTS1", "BTS2", "SSOCLUSTER"]) == [
        "his1.contoso.local", "btsb1"]
    assert sso.unlisted_servers([], ["NODE1"]) == []


WHOLE = CPR + ("SSO Admin account : SSO Administrators\r\nTicket timeout (in minutes) : 2\r\nGlobal flags -\r\n"
               "SSO enabled : Yes\r\nPassword Sync -\r\nFrom Windows to adapters : No\r\n" + "-" * 70 + "\r\n")


def test_section_headers_and_the_closing_rule_are_structure_not_settings():
    db = parse_displaydb(WHOLE)
    assert db.secret_server == "NODE1" and ("SSO enabled", "Yes") in db.settings
    assert not any(label.startswith(("Global flags", "Password Sync", "---")) for label, _ in db.settings)


@pytest.mark.parametrize("line", ["Global flags", "Global flags - Yes", "--- end ---", "-- ", "The SSO service is ok"])
def test_a_line_in_no_published_form_is_still_refused(line):
    with pytest.raises(UnknownToolOutput, match="in no known form"):
        parse_displaydb(WHOLE + line + "\r\n")

"""The lab prints the SSO tools' published text: each template of entsso/lab/texts.py, given a
transcript's values, renders that transcript byte for byte (CRLF included), and the suite's parser
reads what the lab prints."""
from __future__ import annotations

from pathlib import Path

from entsso.domain import sso
from entsso.lab import texts
from selftest.unit.test_transcripts import read_transcript

SSOMANAGE = Path(__file__).resolve().parents[1] / "transcripts" / "ssomanage"


def transcript(case: str) -> str:
    return read_transcript(SSOMANAGE / f"{case}.txt")[1]


def test_lab_displaydb_is_the_published_cpr_transcript():
    lab = texts.displaydb("DSITEAMSRV", "DSITEAMSRV", sql_server="dsiteamsrv", database="SSODB",
                          secret_server="DSITEAMSRV")
    assert lab == transcript("displaydb-local-cpr-2008")


def test_lab_displaydb_names_a_remote_sso_server_as_ssomanage_does():
    lab = texts.displaydb("SSOCLUSTER", "BTS1", sql_server="SQL1", database="SSODB", secret_server="SSOCLUSTER")
    assert lab.startswith("Using SSO server : SSOCLUSTER\r\n")
    assert sso.parse_displaydb(lab).secret_server == "SSOCLUSTER"


def test_lab_rpc_unavailable_is_the_transcript():
    assert texts.tool_error("NODE1", "BTS1", texts.COULD_NOT_CONTACT) == transcript("displaydb-remote-rpc-unavailable")


def test_lab_sql_unavailable_is_the_transcript():
    assert texts.tool_error("SSOCLUSTER", "NODE1", texts.SSODB_LOST) == transcript("displaydb-sql-unavailable")


def test_a_scenario_template_replaces_the_published_form():
    lab = texts.displaydb("SSOCLUSTER", "NODE1", sql_server="SQL1", database="SSODB", secret_server="NODE1",
                          template="Secret Server Name: {secret_server}\r\n")
    assert lab == "Secret Server Name: NODE1\r\n"


def test_lab_displaydb_prints_every_line_of_the_published_form():
    lab = texts.displaydb("DSITEAMSRV", "DSITEAMSRV", sql_server="dsiteamsrv", database="SSODB",
                          secret_server="DSITEAMSRV")
    assert lab.splitlines() == transcript("displaydb-local-cpr-2008").splitlines()
    assert len(lab.splitlines()) == 20 and "Global flags -" in lab and lab.endswith("-" * 70 + "\r\n")

"""Which host instance a failed stop says is still stopping (entsso.domain.biztalk)."""
from __future__ import annotations

import pytest

from entsso.domain import biztalk

WANTED = [("BizTalkServerApplication", "Stopped"), ("ReceiveHost", "Stopped"), ("SendHost", "Stopped")]


@pytest.mark.parametrize("text, draining", [
    ("Could not bring host instance 'Microsoft BizTalk Server ReceiveHost BTS1' on BTS1 to Stopped: The service "
     "did not respond to the start or control request in a timely fashion. Look at the Application event log", "ReceiveHost"),
    ("Host instance 'Microsoft BizTalk Server SendHost BTS1' on BTS1 did not reach Stopped within 120 s (last "
     "state: StopPending). Look at the Application event log (source BizTalk Server) on BTS1, then re-run.", "SendHost"),
    # stopped, then failed for another reason: not draining
    ("Host instance 'Microsoft BizTalk Server SendHost BTS1' on BTS1 did not reach Stopped within 120 s (last "
     "state: Running).", None),
    ("Host instance of host 'ReceiveHost' was not found on BTS1", None),
])
def test_draining_instance_is_named_only_when_windows_says_it_is_still_stopping(text, draining):
    assert biztalk.draining_instance(text, WANTED) == draining


def test_a_start_that_times_out_is_not_draining():
    text = "Host instance 'Microsoft BizTalk Server ReceiveHost BTS1' on BTS1 did not reach Running (last state: StopPending)."
    assert biztalk.draining_instance(text, [("ReceiveHost", "Running")]) is None


def test_the_draining_message_says_what_to_do():
    text = str(biztalk.HostInstanceDraining("BTS1", "ReceiveHost", "error 1053"))
    assert text.startswith("BizTalk host instance ReceiveHost on BTS1 is still draining (StopPending")
    assert "Do not stop it again" in text and "BTSSvc$ReceiveHost on BTS1 shows Stopped" in text

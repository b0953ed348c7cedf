"""Phase 6's adapter-properties proof in Python (entsso.domain.biztalk): BizTalkMgmtDb's handler rows, and the
decision on Get-AdapterHandlers' raw reads (ISSOConfigStore.GetConfigInfo through the local SSO service)."""
from __future__ import annotations

from typing import Any

import pytest

from entsso.domain import biztalk

FILE = biztalk.HandlerConfig("receive", "FILE", "ReceiveHost", "{5D0B6E1A-0C2B-4B7E-9F7A-1D2E3F405060}")
SMTP = biztalk.HandlerConfig("send", "SMTP", "SendHost", "{0A0B0C0D-1111-2222-3333-444455556666}")


def read(cfg: biztalk.HandlerConfig, count: int | None, hresult: str | None = None, error: str | None = None) -> dict[str, Any]:
    return {"application": cfg.adapter, "identifier": cfg.config_id, "property_count": count,
            "hresult": hresult, "error": error}


def test_rows_become_configs_with_braced_upper_case_ids():
    rows = [{"kind": "receive", "adapter": "FILE", "host_name": "ReceiveHost",
             "config_id": "5d0b6e1a-0c2b-4b7e-9f7a-1d2e3f405060"}]
    assert biztalk.parse_handler_rows(rows) == (FILE,)


@pytest.mark.parametrize("row", [
    {"kind": "both", "adapter": "FILE", "host_name": "H", "config_id": "5D0B6E1A-0C2B-4B7E-9F7A-1D2E3F405060"},
    {"kind": "send", "adapter": "", "host_name": "H", "config_id": "5D0B6E1A-0C2B-4B7E-9F7A-1D2E3F405060"},
    {"kind": "send", "adapter": "FILE", "host_name": "H", "config_id": "not-a-guid"},
])
def test_a_row_that_is_not_what_the_statement_selects_is_one_clear_error(row):
    with pytest.raises(ValueError, match=r"tsql.ADAPTER_HANDLERS\), row 1: expected a kind receive/send"):
        biztalk.parse_handler_rows([row])


def test_a_read_with_properties_and_no_hresult_is_readable_matched_case_insensitively():
    doc = {"reads": [read(SMTP, 2), {**read(FILE, 3), "application": "file", "identifier": FILE.config_id.lower()}]}
    got = biztalk.parse_adapter_reads("NODE1", (FILE, SMTP), doc)
    assert [(h.adapter, h.readable, h.property_count, h.seen_from) for h in got] == [
        ("FILE", True, 3, "NODE1"), ("SMTP", True, 2, "NODE1")]


def test_ssos_refusal_is_unreadable_with_its_raw_code_and_text():
    text = "Cannot perform encryption or decryption because the secret is not available from the master secret server."
    got = biztalk.parse_adapter_reads("NODE2", (FILE,), {"reads": [read(FILE, None, "0xC0002A1F", text)]})
    assert (got[0].readable, got[0].error_code, got[0].error, got[0].property_count) == (False, "0xC0002A1F", text, 0)


def test_an_empty_bag_proves_nothing_and_is_unreadable():
    got = biztalk.parse_adapter_reads("NODE1", (FILE,), {"reads": [read(FILE, 0)]})
    assert not got[0].readable and "no property" in (got[0].error or "")


@pytest.mark.parametrize("doc, match", [
    ({"handlers": []}, "returned no 'reads' list"),
    ({"reads": [read(SMTP, 2)]}, r"no read for receive handler FILE \(\{5D0B"),
    ({"reads": [read(FILE, None)]}, "without an HRESULT or a property count"),
])
def test_output_the_parser_does_not_know_is_a_clear_error_naming_the_script(doc, match):
    with pytest.raises(ValueError, match=match):
        biztalk.parse_adapter_reads("NODE1", (FILE,), doc)


class _Host:
    name = "NODE1"

    def __init__(self) -> None:
        self.calls: list[tuple[str, dict[str, Any]]] = []

    def invoke(self, op: str, params: dict[str, Any], **_: Any) -> dict[str, Any]:
        self.calls.append((op, params))
        return {"reads": [read(c, 1) for c in (FILE, SMTP)]}


def test_the_read_asks_the_local_sso_service_in_run_time_mode_for_exactly_the_listed_configs():
    host = _Host()
    assert all(h.readable for h in biztalk.adapter_handlers(host, (FILE, SMTP)))  # type: ignore[arg-type]
    assert host.calls == [("Get-AdapterHandlers", {"flags": 0x4, "configs": [
        {"application": "FILE", "identifier": FILE.config_id}, {"application": "SMTP", "identifier": SMTP.config_id}]})]
    assert biztalk.adapter_handlers(host, ()) == () and len(host.calls) == 1  # type: ignore[arg-type]

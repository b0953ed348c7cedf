"""The canary check every selftest run of the suite goes through can find a leak."""
from pathlib import Path

from selftest.e2e.suite import SuiteRun, find_secrets


def test_canary_check_finds_a_secret_in_a_run_file_and_in_the_output(tmp_path: Path):
    (tmp_path / "journal.jsonl").write_text('{"password": "Canary-1234567"}\n')
    (tmp_path / "clean.txt").write_text("nothing here")
    run = SuiteRun(1, "all fine", tmp_path)
    assert find_secrets(run, ["Canary-1234567"]) == [str(tmp_path / "journal.jsonl")]
    assert find_secrets(SuiteRun(1, "x Canary-1234567 y", None), ["Canary-1234567"]) == ["the run's output"]
    assert find_secrets(run, ["Canary-other"]) == []

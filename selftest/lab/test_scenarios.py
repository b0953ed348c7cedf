"""A scenario says only what the lab understands: every bundled scenario is valid, and a key or value
the lab does not model is refused at start, naming the key, its place and the keys it knows there."""
from __future__ import annotations

import os
import re
import subprocess
import sys
from importlib import resources
from pathlib import Path

import pytest

from entsso.lab import schema
from entsso.lab.launcher import LabError, LabProcess
from entsso.lab.server import ScenarioError, load_scenario

ROOT = Path(__file__).resolve().parents[2]
BUNDLED = sorted(p.name[:-4] for p in resources.files("entsso.lab").joinpath("scenarios").iterdir()
                 if p.name.endswith(".yml"))
TYPO = "extends: fast\nname: typo\ncluster:\n  nodes:\n    - {name: NODE1}\n    - {name: NODE2, stat: Down}\n"


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "bad.yml"
    path.write_text(text)
    return path


@pytest.mark.parametrize("name", BUNDLED)
def test_every_bundled_scenario_says_only_what_the_lab_understands(name):
    assert schema.problems(load_scenario(name)) == []


def test_unknown_key_is_refused_naming_it_its_place_and_the_known_keys(tmp_path):
    with pytest.raises(ScenarioError) as exc:
        load_scenario(str(_write(tmp_path, TYPO)))
    text = str(exc.value)
    assert "cluster.nodes[1].stat: unknown key 'stat'" in text
    assert "the lab knows here: name, state, sso_version, tools_server" in text
    assert str(tmp_path / "bad.yml") in text


def test_unknown_key_in_a_per_node_mapping_names_the_node(tmp_path):
    path = _write(tmp_path, "extends: package\nupgrade:\n  nodes:\n    NODE2: {exitcode: 3010}\n")
    with pytest.raises(ScenarioError, match=r"upgrade\.nodes\.NODE2\.exitcode: unknown key 'exitcode'.*exit_code"):
        load_scenario(str(path))


def test_a_key_the_lab_does_not_model_yet_is_refused_not_ignored(tmp_path):
    # the cluster's quorum model is not modelled (only its witness is): a scenario cannot claim it
    path = _write(tmp_path, "extends: default\ncluster:\n  quorum_type: NodeMajority\n")
    with pytest.raises(ScenarioError, match=r"cluster\.quorum_type: unknown key"):
        load_scenario(str(path))


def test_unknown_fault_kind_is_refused_with_the_kinds_the_lab_injects(tmp_path):
    path = _write(tmp_path, "extends: fast\nfaults:\n  - {kind: reboot, host: NODE1}\n")
    with pytest.raises(ScenarioError) as exc:
        load_scenario(str(path))
    assert "faults[0].kind: unknown value 'reboot'" in str(exc.value)
    assert "'installer_exit'" in str(exc.value)


def test_unknown_value_is_refused_naming_the_values_the_lab_knows(tmp_path):
    path = _write(tmp_path, "extends: fast\ncluster:\n  group_state: Degraded\n")
    with pytest.raises(ScenarioError, match=r"cluster\.group_state: unknown value 'Degraded'; use one of 'Online'"):
        load_scenario(str(path))


def test_fault_without_what_it_needs_is_refused(tmp_path):
    path = _write(tmp_path, "extends: fast\nfaults:\n  - {kind: installer_exit, host: NODE1}\n")
    with pytest.raises(ScenarioError, match=r"faults\[0\]: a installer_exit fault needs 'exit_code'"):
        load_scenario(str(path))


def test_posted_fault_with_a_field_no_kind_knows_is_refused():
    assert schema.fault_problems({"kind": "hang", "host": "NODE1", "secs": 5}) == [
        "fault.secs: unknown key 'secs'; the lab knows here: kind, host, operation, call, times, message, "
        "exit_code, seconds, output, after_sec, job, node, step"]
    assert schema.fault_problems({"kind": "hang", "host": "NODE1", "seconds": 5}) == []


def test_lab_serve_exits_2_naming_the_unknown_key(tmp_path):
    env = {**os.environ, "ENTSSO_WINRM_PASSWORD": "w", "ENTSSO_SQL_PASSWORD": "s"}
    proc = subprocess.run([sys.executable, "-m", "entsso.lab", "serve", "--scenario", str(_write(tmp_path, TYPO))],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert proc.stderr.startswith("entsso-lab: ")
    assert "cluster.nodes[1].stat: unknown key 'stat'" in proc.stderr
    assert "entsso-lab ready" not in proc.stdout


def test_lab_process_raises_lab_error_naming_the_unknown_key(tmp_path):
    lab = LabProcess(str(_write(tmp_path, TYPO)), tmp_path / "inventory.yml")
    with pytest.raises(LabError, match=r"cluster\.nodes\[1\]\.stat: unknown key 'stat'"):
        lab.start()
    assert not (tmp_path / "inventory.yml").exists()


def _documented_keys() -> set[str]:
    """The first column of every table under docs/lab.md's Scenario reference (up to its bundled
    scenarios), dotted with its section: `cluster` + `nodes[].state` -> `cluster.nodes[].state`."""
    doc = (ROOT / "docs" / "lab.md").read_text(encoding="utf-8")
    section = doc[doc.index("## Scenario reference"):]
    section = section[:section.index("### Bundled scenarios")]
    found, prefix = set(), ""
    for line in section.splitlines():
        heading = re.match(r"^### `([a-z_]+)`", line)
        if heading:
            prefix = heading.group(1) + "."
        elif line.startswith("### "):
            prefix = ""
        row = re.match(r"^\| `([^`]+)` \|", line)
        if row:
            key = row.group(1)
            found.add((prefix[:-1] if key.startswith("[") else prefix) + key)
    return found


def test_docs_lab_md_lists_every_scenario_key():
    documented = _documented_keys()
    missing = [k for k in schema.keys() if k not in documented]
    assert missing == [], f"docs/lab.md's Scenario reference does not list: {missing}"
    unknown = sorted(k for k in documented if k not in schema.keys())
    assert unknown == [], f"docs/lab.md's Scenario reference lists keys the lab refuses: {unknown}"


def test_a_node_paused_fault_needs_the_host_it_names():
    assert schema.fault_problems({"kind": "node_paused"}) == ["fault: a node_paused fault needs 'host'"]
    assert schema.fault_problems({"kind": "node_paused", "host": "NODE2", "operation": "Move-ClusterGroup",
                                  "call": 1}) == []

"""Loads the entsso plugin (options, inventory, gate, report) and the runbook's phase fixtures."""
pytest_plugins = [
    "entsso.plugin",
    "fixtures.rehearsal",
    "fixtures.silence",
    "fixtures.backup",
    "fixtures.uncluster",
    "fixtures.upgrade",
    "fixtures.recluster",
    "fixtures.failover",
    "fixtures.resume",
    "fixtures.backout",
    "entsso.report.plugin",
]

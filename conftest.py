"""Loads the entsso plugin (options, inventory, gate, report) and the runbook's phase fixtures."""
pytest_plugins = [
    "entsso.plugin",
    "fixtures.prepare",
    "fixtures.change",
    "entsso.report",
]

"""The run's pytest state, one stash key each (config.stash): entsso.plugin sets them, the report reads them."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from entsso.change.run import Run

RUN_KEY = pytest.StashKey[Run]()  # the run: the fixtures, the plugin and the report share it
ITEMS_KEY = pytest.StashKey[list[pytest.Item]]()  # the tests this run runs (pytest's own list, deselection done)
OUTCOMES_KEY = pytest.StashKey[dict[str, str]]()  # node id -> passed, failed, error or skipped
SITE_CHECKS_KEY = pytest.StashKey[Path | None]()  # the site's own checks' folder (entsso.change.sitechecks)
TEST_PLAN_KEY = pytest.StashKey[dict[str, list[str]]]()  # --plan: each phase's tests (readiness runs now)
PLAN_SUMMARY_KEY = pytest.StashKey[dict[str, Any]]()  # --plan: the plan's operations, for summary.json
CAUSES_KEY = pytest.StashKey[list[Any]]()  # the gate's common causes (entsso.report.causes.Cause), once each
CONCLUSION_KEY = pytest.StashKey[dict[str, Any]]()  # the verdict, reached once (entsso.report.verdict.conclude)
NOT_REPEATED_KEY = pytest.StashKey[list[str]]()  # skips of checks an earlier run of the change verified (reasons)

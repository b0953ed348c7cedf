# The two commands of the README. Both set up .venv (and unixODBC when missing) first.
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.entsso-installed
# a fresh ticket per demo (each demo's lab is new, so an earlier demo's ticket has no record on it);
# `make demo TICKET=CHG-…` names one
ifeq ($(origin TICKET), undefined)
TICKET := CHG-DEMO-$(shell date -u +%Y%m%d-%H%M%S)
endif

.PHONY: test demo gate bench faults clean

$(STAMP): pyproject.toml scripts/bootstrap.sh scripts/odbc18.sh selftest/foreign/node/package-lock.json
	sh scripts/bootstrap.sh
	touch $(STAMP)

## make test: types and lint first (ruff and mypy at 0 on the whole package, the lab included; config in
## pyproject.toml), then our own tests (selftest/), against the lab through the real clients. The benchmark's short
## form first, alone (it measures wall time); then the rest three at a time (pytest-xdist): most of their
## time is the lab's estate delays, not CPU, and the whole suite must stay under 15 minutes on 2 cores.
test: $(STAMP)
	$(PY) -m ruff check entsso
	$(PY) -m mypy entsso
	$(PY) -m pytest selftest/bench -q
	$(PY) -m pytest selftest -q -n 3 --ignore=selftest/bench

## make demo: the full upgrade on a freshly started lab; writes reports/<run-id>/report.html
demo: $(STAMP)
	$(PY) -m pytest --lab --apply --change-ticket $(TICKET) -q
	@$(PY) -c "import entsso.plugin as p; print('report:', p.latest_report())"

## make gate: the read-only readiness gate against the (live, unprepared) lab
gate: $(STAMP)
	$(PY) -m pytest tests_pre -m readiness --lab -q

## make bench: the performance benchmark (docs/performance.md): the gate and the full run with 300 ms per
## WinRM call on the default lab and on 2, 8 and 32 BizTalk servers, each figure beside its lower bound
bench: $(STAMP)
	$(PY) -m selftest.bench --json reports/bench.json

## make faults: the whole fault matrix (every step x every fault kind; CI runs a representative slice)
faults: $(STAMP)
	ENTSSO_FAULT_MATRIX=full $(PY) -m pytest selftest/faults -q -s

clean:
	rm -rf $(VENV) build *.egg-info

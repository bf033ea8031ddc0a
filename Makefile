# The README's two commands: `make demo` and `make test`. Both create the locked runtimes
# first when they are missing (scripts/bootstrap.sh is idempotent and quick when present).
SHELL := /bin/bash
export FLOWGUARD_HOME ?= $(CURDIR)/var
export MLFLOW_DISABLE_TELEMETRY := true
export FEAST_USAGE := False

.PHONY: runtimes demo test lint audit airflow mlflow feast-apply clean

runtimes:
	@scripts/bootstrap.sh

demo: runtimes
	.venv/bin/flowguard demo

test: runtimes
	.venv/bin/python -m pytest

lint: runtimes
	.venv/bin/ruff check dags include plugins feature_repo tests

# Dependency audit of both locks (scripts/audit.py): pip-audit in its own .venv-audit; prints
# "audit skipped: <why>" and passes when no advisory database answers (offline, or a mirror
# without advisories); fails on an advisory not accepted in config/audit-accepted.txt.
audit:
	@[ -x .venv-audit/bin/pip-audit ] || { python3 -m venv .venv-audit \
	  && .venv-audit/bin/pip install --quiet --disable-pip-version-check "pip-audit==2.10.1"; } \
	  || { echo "audit skipped: pip-audit could not be installed (no package index?)"; exit 0; }
	.venv-audit/bin/python scripts/audit.py

# Ports are settings: FLOWGUARD_AIRFLOW_PORT (8080), FLOWGUARD_WORKER_LOG_PORT (8793),
# FLOWGUARD_TRIGGERER_LOG_PORT (8794), FLOWGUARD_MLFLOW_PORT (5000).
export FLOWGUARD_MLFLOW_PORT ?= 5000

# Browse what the demo left behind: the Airflow UI on http://127.0.0.1:8080 (Ctrl-C stops it).
airflow: runtimes
	.venv/bin/flowguard airflow

# The MLflow UI on http://127.0.0.1:5000 over the embedded tracking store.
mlflow: runtimes
	.venv/bin/mlflow ui --backend-store-uri sqlite:///$(FLOWGUARD_HOME)/mlflow/mlflow.db \
	  --host 127.0.0.1 --port $(FLOWGUARD_MLFLOW_PORT) --workers 1

# The feast CLI by hand, as the Feast docs describe (registry and stores under var/feast),
# with FLOWGUARD_HOME resolved as the DAGs spell it (`flowguard feast --help` says why).
feast-apply: runtimes
	.venv/bin/flowguard feast apply

clean:
	rm -rf var

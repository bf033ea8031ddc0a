# syntax=docker/dockerfile:1
# One image for every flowguard container (Airflow api-server, scheduler, dag-processor,
# triggerer, Celery worker, init, MLflow server), built from the repo's locks exactly as
# scripts/bootstrap.sh builds them on a laptop:
#   /opt/flowguard/.venv        platform runtime, requirements.txt (uv, from PyPI)
#   /opt/flowguard/.venv-drift  drift runtime, requirements-drift.txt (pip --no-deps); torch
#                               is the CPU build (2.13.0+cpu), taken from PyTorch's CPU index
# The layout mirrors the repository so flowguard.config's defaults hold (PROJECT_ROOT,
# .venv-drift/bin/python). docker-compose.yaml mounts include/, dags/, plugins/,
# feature_repo/ and airflow.cfg over the copies made here, so code changes need no rebuild.
FROM python:3.11-slim-bookworm

ARG FLOWGUARD_UID=50000
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu
ENV PYTHONDONTWRITEBYTECODE=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    UV_NO_CACHE=1 \
    AIRFLOW_HOME=/opt/airflow \
    AIRFLOW_CONFIG=/opt/flowguard/airflow.cfg \
    FLOWGUARD_HOME=/opt/flowguard/var \
    MLFLOW_DISABLE_TELEMETRY=true \
    FEAST_USAGE=False \
    GX_ANALYTICS_ENABLED=False \
    PATH=/opt/flowguard/.venv/bin:$PATH

# libgomp1: XGBoost and torch's OpenMP runtime.
RUN apt-get update \
 && apt-get install -y --no-install-recommends libgomp1 \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --uid "${FLOWGUARD_UID}" --gid 0 --home-dir /opt/flowguard --no-create-home flowguard \
 && mkdir -p /opt/flowguard/var /opt/airflow/logs \
 && chown -R "${FLOWGUARD_UID}:0" /opt/flowguard /opt/airflow

WORKDIR /opt/flowguard

# Locks first: the two runtimes are rebuilt only when a lock changes.
COPY --chown=${FLOWGUARD_UID}:0 requirements.txt requirements-drift.txt pyproject.toml ./
RUN python -m venv .venv \
 && .venv/bin/pip install --quiet "uv==0.13.9" \
 && .venv/bin/uv pip install --python .venv/bin/python -r requirements.txt
RUN python -m venv .venv-drift \
 && .venv-drift/bin/pip install --quiet --no-deps --extra-index-url "${TORCH_INDEX_URL}" \
      -r requirements-drift.txt \
 && .venv-drift/bin/python -c 'import torch; assert torch.version.cuda is None, torch.__version__'

COPY --chown=${FLOWGUARD_UID}:0 include ./include
# The real CICIDS2017 samples the synthetic week is built from (a few MB, data/real/PROVENANCE.md).
COPY --chown=${FLOWGUARD_UID}:0 data ./data
# pip check: clean but for the one documented override (Pillow above alibi-detect 0.11.4's
# Pillow<10 cap, requirements-drift.in), as scripts/bootstrap.sh checks it.
# mlflow[auth] (Flask-WTF) for the MLflow server's basic-auth app (docker-compose.yaml), in
# the image only: the laptop runtimes never serve MLflow with authentication.
RUN .venv/bin/uv pip install --python .venv/bin/python --no-deps -e . \
 && .venv/bin/uv pip install --python .venv/bin/python "mlflow[auth]==$(sed -n 's/^mlflow==//p' requirements.txt)" \
 && .venv/bin/python -c 'import mlflow.server.auth' \
 && .venv-drift/bin/pip install --quiet --no-deps -e . \
 && { .venv-drift/bin/pip check || true; } \
    | grep -v -E '^alibi-detect 0\.11\.4 has requirement Pillow<10\.0\.0,>=5\.4\.1, but you have pillow 12\.3\.0\.$|^No broken requirements found' \
    | { ! grep .; }

COPY --chown=${FLOWGUARD_UID}:0 airflow.cfg ./airflow.cfg
COPY --chown=${FLOWGUARD_UID}:0 dags ./dags
COPY --chown=${FLOWGUARD_UID}:0 plugins ./plugins
COPY --chown=${FLOWGUARD_UID}:0 feature_repo ./feature_repo
RUN chown -R "${FLOWGUARD_UID}:0" /opt/flowguard/.venv /opt/flowguard/.venv-drift

USER ${FLOWGUARD_UID}
CMD ["airflow", "version"]

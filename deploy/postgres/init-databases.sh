#!/usr/bin/env bash
# Run once by the postgres image on an empty data volume (/docker-entrypoint-initdb.d):
# one role and one database per consumer, each with its own password from the environment.
#   airflow  Airflow metadata + Celery results     (AIRFLOW_DB_PASSWORD)
#   mlflow   MLflow tracking + model registry      (MLFLOW_DB_PASSWORD)
#   feast    Feast SQL registry                    (FEAST_DB_PASSWORD)
# FLOWGUARD_DATABASES overrides the list (tests/test_compose.py runs this script with
# throwaway names against the machine's PostgreSQL).
set -euo pipefail
for name in ${FLOWGUARD_DATABASES:-airflow mlflow feast}; do
  var="${name^^}_DB_PASSWORD"
  password="${!var:?$var must be set (see .env.example)}"
  psql -v ON_ERROR_STOP=1 --username "${POSTGRES_USER:-postgres}" --dbname postgres \
       -v name="$name" -v password="$password" <<'SQL'
CREATE ROLE :"name" LOGIN PASSWORD :'password';
CREATE DATABASE :"name" OWNER :"name";
SQL
done

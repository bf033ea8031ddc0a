#!/usr/bin/env bash
# Create or refresh the two locked Python runtimes. Idempotent: a runtime whose lock file
# has not changed since it was built is left alone (a stamp file holds the lock's hash).
#   .venv        platform runtime: requirements.txt, installed with uv (from PyPI)
#   .venv-drift  drift runtime: requirements-drift.txt (a full freeze of
#                requirements-drift.in), installed with pip --no-deps so that torch comes
#                from the local CPU wheel and no resolver ever reaches for a CUDA build.
set -euo pipefail
cd "$(dirname "$0")/.."
# Two `make` targets started at once must not build the same virtualenv concurrently.
exec 9>.bootstrap.lock
flock 9

PYTHON="${PYTHON:-$(command -v python3.11 || command -v python3)}"
"$PYTHON" -c 'import sys; assert sys.version_info[:2] == (3, 11), sys.version' \
  || { echo "bootstrap: Python 3.11 is required (set PYTHON=/path/to/python3.11)" >&2; exit 1; }

# pip prints a warning per package for this machine's extra index folders; drop those lines
# but keep pip's own exit status (a filter in a pipe with `|| true` would hide a failure).
pip_quiet() {
  local log; log=$(mktemp)
  if "$@" >"$log" 2>&1; then status=0; else status=$?; fi
  grep -v "^WARNING: Location" "$log" || true
  rm -f "$log"
  return "$status"
}

# A long silent install says what it is doing: every 15 s, how long and how much so far.
progress() {
  local what=$1 dir=$2 began; began=$(date +%s)
  while sleep 15; do
    echo "bootstrap: ${what}: $(( $(date +%s) - began )) s, $(du -sh "$dir" 2>/dev/null | cut -f1) installed so far"
  done
}
ticker=""
trap '[ -z "$ticker" ] || kill "$ticker" 2>/dev/null || true' EXIT

stamp_ok() { [ -f "$1/.lock-stamp" ] && [ "$(cat "$1/.lock-stamp")" = "$(sha256sum "$2" pyproject.toml | sha256sum | cut -c1-64)" ]; }
write_stamp() { sha256sum "$2" pyproject.toml | sha256sum | cut -c1-64 > "$1/.lock-stamp"; }

if ! stamp_ok .venv requirements.txt; then
  echo "bootstrap: building the platform runtime (.venv) from requirements.txt"
  start=$(date +%s)
  [ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
  pip_quiet .venv/bin/python -m pip install --quiet --disable-pip-version-check "uv==0.13.9"
  .venv/bin/uv pip install --quiet --python .venv/bin/python -r requirements.txt
  .venv/bin/uv pip install --quiet --python .venv/bin/python --no-deps -e .
  write_stamp .venv requirements.txt
  echo "bootstrap: platform runtime ready in $(( $(date +%s) - start )) s ($(du -sh .venv | cut -f1))"
fi

if ! stamp_ok .venv-drift requirements-drift.txt; then
  echo "bootstrap: building the drift runtime (.venv-drift) from requirements-drift.txt"
  start=$(date +%s)
  [ -x .venv-drift/bin/python ] || "$PYTHON" -m venv .venv-drift
  echo "bootstrap: installing $(grep -c '==' requirements-drift.txt) pinned packages (torch 2.13 CPU," \
    "alibi-detect 0.11.4; ~2 GB): about 75 s from a warm cache, a few minutes from a cold one"
  progress "drift runtime" .venv-drift & ticker=$!
  pip_quiet .venv-drift/bin/python -m pip install --quiet --disable-pip-version-check --no-deps \
    -r requirements-drift.txt
  kill "$ticker" 2>/dev/null || true; ticker=""
  .venv-drift/bin/python -c 'import torch; assert "+cpu" in torch.__version__ or not torch.cuda.is_available(), torch.__version__'
  pip_quiet .venv-drift/bin/python -m pip install --quiet --disable-pip-version-check --no-deps -e .
  # `pip check` must be clean but for the one documented override (requirements-drift.in:
  # Pillow above alibi-detect 0.11.4's declared Pillow<10 cap, for CVE-2023-4863).
  ACCEPTED_PIP_CHECK='^alibi-detect 0\.11\.4 has requirement Pillow<10\.0\.0,>=5\.4\.1, but you have pillow 12\.3\.0\.$'
  check=$(.venv-drift/bin/python -m pip check 2>&1 || true)
  others=$(grep -v -E "$ACCEPTED_PIP_CHECK" <<<"$check" | grep -v '^No broken requirements found' || true)
  if [ -n "$others" ]; then echo "$check" >&2; echo "bootstrap: pip check failed in .venv-drift" >&2; exit 1; fi
  grep -E "$ACCEPTED_PIP_CHECK" <<<"$check" | sed 's/^/bootstrap: accepted (requirements-drift.in): /' || true
  write_stamp .venv-drift requirements-drift.txt
  echo "bootstrap: drift runtime ready in $(( $(date +%s) - start )) s ($(du -sh .venv-drift | cut -f1))"
fi

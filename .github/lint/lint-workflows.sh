#!/usr/bin/env bash
# Lints the GitHub Actions workflows, which no machine of the project can run
# (.github/workflows/windows.yml needs a GitHub-hosted Windows runner):
# actionlint with shellcheck for bash steps, the inputs of the pinned actions,
# commit-SHA pins, and a PowerShell parse of the pwsh steps
# (lint-workflows.py says what each check does).
#   bash .github/lint/lint-workflows.sh [WORKFLOW.yml ...]
#   (default: every .yml and .yaml file in .github/workflows)
# Installs its tools, pinned in requirements.txt beside it, as wheels
# into a venv in target/ (ignored by git, made by env.sh's ensure_venv), and
# Debian's python3-venv if missing.
# Exit: 0 no finding, 1 findings (file:line:column: message), 2 bad usage,
# 3 the tools could not be installed or run.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=../../linux/env.sh
source "$here/../../linux/env.sh"

files=()
if (($#)); then
  for arg in "$@"; do
    [[ -f $arg ]] || { echo "lint-workflows: no such file: $arg" >&2; exit 2; }
    files+=("$arg")
  done
else
  shopt -s nullglob
  files=("$REPO_ROOT"/.github/workflows/*.yml "$REPO_ROOT"/.github/workflows/*.yaml)
  shopt -u nullglob
  if ((${#files[@]} == 0)); then
    echo "lint-workflows: no workflow in $REPO_ROOT/.github/workflows" >&2
    exit 2
  fi
fi

venv=$REPO_ROOT/target/venv-lint-workflows
requirements=$here/requirements.txt
# (env.sh's ensure_venv: the one freshness rule; a change to the requirements or
# to the file they include makes pip install them again)
ensure_debian_packages python
if ! ensure_venv "$venv" "$requirements" --only-binary=:all:; then
  echo "lint-workflows: could not install the tools of $requirements (above)" >&2
  exit 3
fi

exec "$venv/bin/python" "$here/lint-workflows.py" "${files[@]}"

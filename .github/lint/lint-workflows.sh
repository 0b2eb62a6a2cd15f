#!/usr/bin/env bash
# Lints the GitHub Actions workflows, which no machine of the project can run
# (lint-workflows.py says what it checks):
#   bash .github/lint/lint-workflows.sh [WORKFLOW.yml ...]   (default: .github/workflows/*.yml, *.yaml)
# Its tools, pinned in requirements.txt beside it, go into target/venv-lint-workflows
# (env.sh's ensure_venv). Exit: 0 no finding, 1 findings, 2 bad usage, 3 the tools
# could not be installed or run.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
for arg in "$@"; do
  [[ -f $arg ]] || { echo "lint-workflows: no such file: $arg" >&2; exit 2; }
done
# shellcheck source=linux/env.sh
source "$here/../../linux/env.sh"
ensure_debian_packages python
venv=$REPO_ROOT/target/venv-lint-workflows
ensure_venv "$venv" "$here/requirements.txt" --only-binary=:all: \
  || { echo "lint-workflows: could not install the tools of $here/requirements.txt (above)" >&2; exit 3; }
exec "$venv/bin/python" "$here/lint-workflows.py" "$@"

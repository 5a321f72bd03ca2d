#!/usr/bin/env bash
# The whole test suite (README command 2): set-up, Debian's chromium for the viewer tests, a real Neo4j 5.26
# (unless NEO4J_URI points at one), ruff, mypy, pytest; Neo4j is stopped again on exit. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bash scripts/install-chromium
export HF_HUB_OFFLINE=1 NEURFLOW_REQUIRE_NEO4J=1
if [ -z "${NEO4J_URI:-}" ]; then
  NEO4J_RUN_DIR=$(mktemp -d)
  export NEO4J_RUN_DIR NEO4J_WATCH_PID=$$
  trap 'scripts/neo4j-server stop || true; rm -rf "$NEO4J_RUN_DIR"' EXIT
  scripts/neo4j-server start
  set -a; . "$NEO4J_RUN_DIR/env"; set +a
fi
.venv/bin/ruff check .
.venv/bin/python -m mypy neurflow_kb
.venv/bin/python -m pytest -q -p no:cacheprovider "$@"

#!/usr/bin/env bash
# Runs the demo: all four services in one process (monolithic mode) exercised through
# gRPC, printing what happened. Starts Postgres and Redis first when they are not
# running; uses the database `idic` (created when missing).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

bash scripts/ensure-services.sh
IDIC_LOG_FILTER="${IDIC_LOG_FILTER:-warn}" cargo run --locked --quiet -p idic -- demo

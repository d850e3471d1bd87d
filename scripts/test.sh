#!/usr/bin/env bash
# Runs every test: the Rust workspace's unit and integration tests (real Postgres,
# Redis and gRPC on loopback), then the outside Python client. Starts Postgres and
# Redis first when they are not running.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

bash scripts/ensure-services.sh
cargo build --locked -p idic
cargo test --locked --workspace
bash tests/python/run.sh

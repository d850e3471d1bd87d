#!/usr/bin/env bash
# Runs every test: the Rust workspace's unit and integration tests (real Postgres,
# Redis and gRPC on loopback), then the outside Python client. Starts Postgres and
# Redis first when they are not running.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

bash scripts/ensure-services.sh
# The published CDNOW data the segmentation models are checked against (fetched once).
bash scripts/reference-data.sh
export IDIC_REFERENCE_DATA_DIR="${IDIC_REFERENCE_DATA_DIR:-$PWD/target/reference-data/lifetimes/datasets}"
cargo build --locked -p idic
cargo test --locked --workspace
bash tests/python/run.sh
# Kubernetes manifests: every overlay rendered by kustomize and checked offline by kubernetes-validate --strict.
bash scripts/k8s-validate.sh

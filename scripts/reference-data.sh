#!/usr/bin/env bash
# The published CDNOW data the segmentation models are checked against (Fader, Hardie &
# Lee), fetched from the `lifetimes` package on PyPI rather than committed: the wheel is
# downloaded once into target/reference-data and its CDNOW datasets extracted beside it.
# Tests read them from IDIC_REFERENCE_DATA_DIR (default target/reference-data/lifetimes/datasets).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

dir=target/reference-data
datasets="$dir/lifetimes/datasets"
if [ ! -f "$datasets/CDNOW_master.txt" ] || [ ! -f "$datasets/cdnow_customers_summary.csv" ]; then
    mkdir -p "$dir"
    python3 -m pip download --no-deps --quiet --dest "$dir" lifetimes==0.11.3
    python3 -c 'import sys, zipfile; z = zipfile.ZipFile(sys.argv[1]); z.extractall(sys.argv[2], [n for n in z.namelist() if "/datasets/" in n and "CDNOW" in n.upper()])' \
        "$dir"/[Ll]ifetimes-0.11.3-py3-none-any.whl "$dir"
fi
echo "reference data in $datasets"

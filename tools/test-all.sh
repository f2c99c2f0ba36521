#!/usr/bin/env bash
# Installs what the tests need, then runs every suite: lint, C++ (GoogleTest via ctest), Python (pytest), and
# the wheels (built for every CPython 3.10-3.13, each installed in a fresh venv and run on the fast tier).
# Usage: bash tools/test-all.sh [extra pytest arguments]     (NDSHM_WHEELS=0 leaves the wheels out)
set -euo pipefail
cd "$(dirname "$0")/.."

if ! dpkg -s libgtest-dev cmake g++ zlib1g-dev libisal-dev libdeflate-dev libzstd-dev libblosc-dev liblzf-dev hdf5-tools >/dev/null 2>&1; then
  ${SUDO:-} apt-get update -qq
  ${SUDO:-} apt-get install -y -qq g++ cmake libgtest-dev zlib1g-dev libisal-dev libdeflate-dev libzstd-dev libblosc-dev liblzf-dev \
    hdf5-tools >/dev/null
fi
python3 -m pip install -q ".[test]"

cmake -S . -B build/cpp-tests -DNDSHM_BUILD_TESTS=ON -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build/cpp-tests -j2
ctest --test-dir build/cpp-tests --output-on-failure -j2

python3 -m ruff check python tests bench examples
python3 -m ruff format --check python tests bench examples
python3 -m pytest "$@"

if [ "${NDSHM_WHEELS:-1}" != 0 ]; then
  bash tools/build-wheels.sh
  bash tools/test-wheels.sh -q
fi

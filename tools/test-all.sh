#!/usr/bin/env bash
# Installs what the tests need, then runs every suite: lint, C++ (GoogleTest via ctest), Python (pytest).
# Usage: bash tools/test-all.sh [extra pytest arguments]
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

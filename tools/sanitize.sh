#!/usr/bin/env bash
# Builds the C++ core and its tests with sanitizers and runs them.
# Usage: bash tools/sanitize.sh address   (ASan + UBSan)   |   bash tools/sanitize.sh thread   (TSan)
set -euo pipefail
cd "$(dirname "$0")/.."
kind=${1:-address}
build=build/sanitize-$kind
cmake -S . -B "$build" -DNDSHM_BUILD_TESTS=ON -DNDSHM_SANITIZE="$kind" -DCMAKE_BUILD_TYPE=Debug >/dev/null
cmake --build "$build" -j2
# EXPECT_DEATH forks; TSan warns about that by design, so death tests run only under ASan.
filter=$([[ $kind == thread ]] && echo "-E ^mapping\." || true)
ASAN_OPTIONS=detect_leaks=1 TSAN_OPTIONS=halt_on_error=1 ctest --test-dir "$build" --output-on-failure $filter

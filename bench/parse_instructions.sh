#!/usr/bin/env bash
# Instructions per row of the loader's fast path (row_program::run), counted by callgrind: a figure
# that does not move with the VM's noise (timings here vary by 20-40% from run to run), for judging
# changes to src/loadtxt/parser.cpp and fields.hpp before timing them with parse_bench.
# Needs valgrind (apt-get install valgrind) and the C++ test build (see bench/parse_bench.cpp).
# Run: bash bench/parse_instructions.sh [FILE] [coverage|matrix]   (FILE: 300,000 rows of
#      bench_loadtxt.py's coverage file by default)
# 2026-11-26, project VM, coverage rows: 463.5 at 25dd806; 440.2 once parse read a frame local to the run;
# 421.2 with signs and room checked off the column chain; 341.6 through the compiled coverage5 layout;
# 319.3 with decimals converted 16 bytes at once (2026-11-26, session 8). Matrix rows (300,000 rows of the
# matrix file, `matrix`): 1221.0 then (a Release build, 20,000 rows: 1543 before, 1233 after, 1205 with
# the mantissa converted to double as a signed integer); 1089.7 through the float64 runs (session 10,
# /tmp/m20k.txt = the matrix file's first 20,000 rows; 1198.7 before).
set -euo pipefail
cd "$(dirname "$0")/.."
file=${1:-}
kind=${2:-coverage}
if [[ -z $file ]]; then
  file=/tmp/ndshm-bench/coverage-300k.tsv
  [[ -e $file ]] || head -n 300000 /tmp/ndshm-bench/coverage-1000000000.tsv > "$file"
fi
cmake --build build/cpp-tests -j2 --target parse_bench > /dev/null
rows=$(wc -l < "$file")
out=$(mktemp)
trap 'rm -f "$out"' EXIT
valgrind --tool=callgrind --callgrind-out-file="$out" build/cpp-tests/parse_bench "$file" 1 1 "$kind" > /dev/null 2>&1
# Self cost of every source line inlined into run<...> (the lines without "=>" are not calls).
callgrind_annotate "$out" | grep 'row_program::run<' | grep -v '=>' |
  awk -v rows="$rows" '{gsub(",", "", $1); total += $1} END {printf "fast path: %.1f instructions per row (%d rows)\n", total / rows, rows}'

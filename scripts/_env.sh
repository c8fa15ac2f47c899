# Shared by scripts/run and scripts/test: a virtual environment with Hotlist installed.
# Re-installs only when pyproject.toml changed since the last install.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
PYTHON="${PYTHON:-python3}"
VENV="${VENV:-$ROOT/.venv}"

ensure_venv() {
  local extras="$1"
  if ! "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
    echo "Hotlist needs Python 3.11 or newer; $PYTHON is $("$PYTHON" --version 2>&1)." >&2
    exit 1
  fi
  if [ ! -x "$VENV/bin/python" ]; then
    echo "==> Creating the virtual environment in $VENV"
    "$PYTHON" -m venv "$VENV"
  fi
  local hash stamp
  hash="$(sha256sum pyproject.toml | cut -c1-16)"
  stamp="$VENV/.hotlist-installed-$hash-${extras:-base}"
  # An install with the dev extra also covers the plain one.
  if [ ! -f "$stamp" ] && { [ -n "$extras" ] || [ ! -f "$VENV/.hotlist-installed-$hash-dev" ]; }; then
    echo "==> Installing Hotlist${extras:+ with [$extras]}"
    "$VENV/bin/python" -m pip install --quiet --upgrade pip
    "$VENV/bin/python" -m pip install --quiet -e ".${extras:+[$extras]}"
    rm -f "$VENV"/.hotlist-installed-*
    touch "$stamp"
  fi
}

#!/usr/bin/env bash
# Install what the browser tests need, idempotently, on a fresh Debian machine:
# Debian's chromium (the browser playwright drives through executable_path; a
# `playwright install` browser download does not exist here, so it is never run)
# and the playwright Python package in the project's .venv.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV_PY="${VENV_PY:-.venv/bin/python}"

if [ ! -x /usr/bin/chromium ]; then
  if [ "$(id -u)" -eq 0 ]; then SUDO=""; else SUDO="sudo"; fi
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  # fonts-dejavu-core: readable text in screenshots; chromium pulls in the rest.
  $SUDO apt-get install -y -qq --no-install-recommends chromium fonts-dejavu-core >/dev/null
fi
/usr/bin/chromium --version 2>/dev/null  # (its /etc/chromium.d/dev-shm check is noisy)

if ! "$VENV_PY" -c "import playwright" 2>/dev/null; then
  "$VENV_PY" -m pip install -q "playwright>=1.45" 2>&1 | grep -v "is ignored" || true
fi
"$VENV_PY" -c "import playwright; from importlib.metadata import version; print('playwright', version('playwright'))"

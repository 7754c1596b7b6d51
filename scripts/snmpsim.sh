#!/usr/bin/env bash
# The SNMP simulator the tests serve the LibreNMS recordings with (../shared/snmprec). It lives
# in its own virtual environment, .snmpsim-venv/, because it pins its own pysnmp, which must not
# decide the version monitord itself runs with.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3}"
SNMPSIM_VERSION="1.2.2"  # needs pysmi, which its metadata does not declare
if [ -x .snmpsim-venv/bin/snmpsim-command-responder ] &&
   .snmpsim-venv/bin/python -c "import importlib.metadata as m, sys; sys.exit(m.version('snmpsim') != '$SNMPSIM_VERSION')" 2>/dev/null &&
   .snmpsim-venv/bin/python -c "import snmpsim.commands.responder" 2>/dev/null; then
  exit 0
fi
rm -rf .snmpsim-venv
"$PYTHON" -m venv .snmpsim-venv
.snmpsim-venv/bin/python -m pip install -q --upgrade pip 2>&1 | grep -v "^WARNING: Location" || true
.snmpsim-venv/bin/python -m pip install -q "snmpsim==$SNMPSIM_VERSION" "pysmi==2.0.0" "pysnmp==7.1.30" 2>&1 | grep -v "^WARNING: Location" || true
.snmpsim-venv/bin/python -c "import snmpsim.commands.responder"

#!/usr/bin/env bash
# Install what the compatibility suite needs (fast when already installed) and
# run it against the broker binary in $DUCTSTREAM_BIN
# (default $HOME/.cache/ductstream/target/debug/ductstream).
# Extra arguments go to pytest, e.g.  compat-tests/run.sh -k kcat -x
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
VENV="${DUCTSTREAM_VENV:-$HOME/.cache/ductstream/venv}"
bash "$HERE/setup.sh"
cd "$HERE/.."
# Test paths given (compat-tests/test_x.py, ...::test_y): run only those;
# otherwise the whole suite.
targets=("$HERE")
for a in "$@"; do
    if [[ "$a" == *.py || "$a" == *.py::* ]]; then targets=(); break; fi
done
exec "$VENV/bin/python" -m pytest -q "${targets[@]}" "$@"

#!/usr/bin/env bash
# Build the one-folder bundle and check that it runs:
#   1. the window starts offscreen, shows itself and exits cleanly (tunesmith --smoke-test);
#   2. a worker process spawns from the frozen executable and imports the engine (--check-worker);
#   3. the bundled command line exports a tiny fine-tuned run to GGUF and verifies it, which loads
#      torch, transformers, peft and gguf inside the frozen bundle.
# Prints the bundle's size and build time. Not part of `make test` (a build takes minutes).
#
#   packaging/smoke.sh                      uses .venv/bin/pyinstaller (make bundle installs it)
#   PYINSTALLER=/tmp/bundle-venv/bin/pyinstaller packaging/smoke.sh
#   SKIP_BUILD=1 packaging/smoke.sh         checks an existing dist/tunesmith
set -euo pipefail
cd "$(dirname "$0")/.."

PYINSTALLER=${PYINSTALLER:-.venv/bin/pyinstaller}
PYTHON=${PYTHON:-.venv/bin/python}  # only builds the tiny test run, outside the bundle
DIST=${DIST:-dist}
WORK=${WORK:-build/pyinstaller}
BUNDLE="$DIST/tunesmith"

if [ -z "${SKIP_BUILD:-}" ]; then
    start=$(date +%s)
    "$PYINSTALLER" --noconfirm --log-level WARN --distpath "$DIST" --workpath "$WORK" packaging/tunesmith.spec
    echo "build time: $(( $(date +%s) - start )) s"
fi
echo "bundle size: $(du -sh "$BUNDLE" | cut -f1) ($BUNDLE)"

scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
export TUNESMITH_HOME="$scratch/home"  # never touch the user's own data folder

echo "1/3 window: $BUNDLE/tunesmith --smoke-test"
QT_QPA_PLATFORM=offscreen timeout 180 "$BUNDLE/tunesmith" --smoke-test

echo "2/3 worker process: $BUNDLE/tunesmith --check-worker"
timeout 300 "$BUNDLE/tunesmith" --check-worker

echo "3/3 command line: export a tiny run to GGUF with the bundled tunesmith-cli"
"$PYTHON" - "$scratch" <<'PY'
import sys
from pathlib import Path

sys.path.insert(0, ".")
from tests.export_runs import make_lora_run
from tests.tiny_model import build_tiny_model

scratch = Path(sys.argv[1])
make_lora_run(scratch / "run", build_tiny_model(scratch / "base"))
PY
timeout 300 "$BUNDLE/tunesmith-cli" export "$scratch/run" --to gguf-q8_0 --out "$scratch/out/model.gguf"
test -s "$scratch/out/model.gguf" && test -s "$scratch/out/Modelfile"
echo "smoke test passed"

#!/usr/bin/env bash
# Release check of the desktop bundle, as a new user meets it: a fresh home folder and no network at all.
#   1. the bundled tunesmith-cli prepares the starter model from the GGUF inside the bundle;
#   2. it trains two steps on the sample data and 3. chats with the result;
#   4. the bundled window's first start (a second fresh home) converts it too and shows it ready;
#   5. a worker process spawns from the frozen executable;
#   6. the window trains with its defaults until the first loss point (timed; FIRST_LOSS=0 skips it);
#   7. the command line exports a tiny run to GGUF (torch, transformers, peft and gguf frozen).
# Prints the bundle's size and each step's time (packaging/README.md records them). Not part of
# `make test`: a build takes ~5 minutes on 2 cores and the checks ~6 more; it is the release check.
#
#   packaging/smoke.sh                  builds with .venv/bin/pyinstaller, then checks
#   SKIP_BUILD=1 packaging/smoke.sh     checks an existing dist/tunesmith
#   PYINSTALLER=/tmp/bundle-venv/bin/pyinstaller packaging/smoke.sh
#
# No network: the checks run inside `unshare -n` (a network namespace with no interfaces; root, or
# `unshare -rn` where user namespaces are allowed). If neither works the script stops, unless
# ALLOW_NETWORK=1 (then it says loudly that the check is weaker).
set -euo pipefail
cd "$(dirname "$0")/.."

PYINSTALLER=${PYINSTALLER:-.venv/bin/pyinstaller}
PYTHON=${PYTHON:-.venv/bin/python}  # only builds the tiny test run of step 7, outside the bundle
DIST=${DIST:-dist}
WORK=${WORK:-build/pyinstaller}
BUNDLE="$(pwd)/$DIST/tunesmith"

if [ -z "${SKIP_BUILD:-}" ]; then
    start=$(date +%s)
    "$PYINSTALLER" --noconfirm --log-level WARN --distpath "$DIST" --workpath "$WORK" packaging/tunesmith.spec
    echo "build time: $(( $(date +%s) - start )) s"
fi
echo "bundle size: $(du -sh "$BUNDLE" | cut -f1) ($BUNDLE; $(du -sh "$BUNDLE/_internal/torch" | cut -f1) of it torch)"

scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
mkdir -p "$scratch/home"
"$PYTHON" - "$scratch" <<'PY'
import sys
from pathlib import Path

sys.path.insert(0, ".")
from tests.export_runs import make_lora_run
from tests.tiny_model import build_tiny_model

scratch = Path(sys.argv[1])
make_lora_run(scratch / "tiny-run", build_tiny_model(scratch / "tiny-base"))
PY

if unshare -n true 2>/dev/null; then
    isolate=(unshare -n)
elif unshare -rn true 2>/dev/null; then
    isolate=(unshare -rn)
elif [ -n "${ALLOW_NETWORK:-}" ]; then
    isolate=()
    echo "WARNING: no network namespace here; the checks run WITH network (ALLOW_NETWORK=1)"
else
    echo "cannot cut the network (unshare -n and unshare -rn both fail); run as root, or ALLOW_NETWORK=1" >&2
    exit 1
fi

# A brand-new user: an empty home, no Tunesmith variables, nothing but the bundle.
"${isolate[@]}" env -i PATH=/usr/bin:/bin HOME="$scratch/home" LANG=C.UTF-8 QT_QPA_PLATFORM=offscreen \
    FIRST_LOSS="${FIRST_LOSS:-1}" bash -euo pipefail -s "$BUNDLE" "$scratch" <<'CHECKS'
bundle=$1 scratch=$2
cli=$bundle/tunesmith-cli
step() { echo; echo "== $1"; step_start=$(date +%s%N); }
took() { local ms=$(( ($(date +%s%N) - step_start) / 1000000 )); echo "   took $((ms / 1000)).$(( ms % 1000 / 100 )) s"; }

step "0/7 no network"
if timeout 5 bash -c 'exec 3<>/dev/tcp/pypi.org/443' 2>/dev/null; then echo "pypi.org is reachable: not isolated" >&2; exit 1; fi
echo "   pypi.org cannot be reached"

step "1/7 tunesmith-cli setup (first start: the bundled GGUF becomes the starter model)"
timeout 600 "$cli" setup
took
test -f "$HOME/.local/share/tunesmith/models/smollm2-135m-instruct/tunesmith-model.json"

step "2/7 tunesmith-cli train: two steps on the sample data"
# The live general-knowledge check is left out here (it scores 28 questions before and at each of the
# two validations: minutes on 2 cores); step 6 trains with every default, that check included.
timeout 600 "$cli" train --data "$bundle/_internal/resources/sample_dataset.jsonl" --max-steps 2 --out "$scratch/run" \
    --set training.general_curve=false
took
test -f "$scratch/run/adapter/adapter_model.safetensors"

step "3/7 tunesmith-cli chat"
answer=$(timeout 300 "$cli" chat "$scratch/run" --prompt "What is the capital of France?" --max-new-tokens 24)
echo "   answer: $answer"
took
test -n "$answer"

step "4/7 the window's first start (another fresh home): converts the starter, then shows it ready"
mkdir "$scratch/home2"
HOME="$scratch/home2" timeout 600 "$bundle/tunesmith" --smoke-test --expect-model-ready --screenshot "$scratch/window.png"
took
test -s "$scratch/window.png"

step "5/7 a worker process spawns from the frozen executable"
timeout 300 "$bundle/tunesmith" --check-worker
took

if [ "$FIRST_LOSS" = 1 ]; then
    step "6/7 the window trains with its defaults until the first loss point"
    timeout 600 "$bundle/tunesmith" --smoke-test --first-loss --screenshot "$scratch/first-loss.png"
    took
fi

step "7/7 tunesmith-cli export: a tiny run to GGUF"
timeout 300 "$cli" export "$scratch/tiny-run" --to gguf-q8_0 --out "$scratch/out/model.gguf"
took
test -s "$scratch/out/model.gguf" && test -s "$scratch/out/Modelfile"
echo; echo "data folder: $(du -sh "$HOME/.local/share/tunesmith" | cut -f1); nothing written outside it:"
find "$HOME" -mindepth 1 -maxdepth 3 -not -path "$HOME/.local" -not -path "$HOME/.local/share" \
     -not -path "$HOME/.local/share/tunesmith*" | sed 's/^/   /'
CHECKS
mkdir -p build/smoke
cp "$scratch"/*.png build/smoke/ 2>/dev/null || true
echo "smoke test passed (screenshots in build/smoke/)"

#!/usr/bin/env bash
# The whole GPU measurement of issue 15 as one prepared script, for a session that is lent a GPU.
#
#   1. Here (no GPU, internet to PyPI):   bash bench/gpu_session.sh prepare
#      fills .benchcarry/ (ignored by git): wheels the GPU machine lacks, the starter model's
#      config and tokenizer (no weights: the race gives it random ones), the alpaca data.
#   2. On the device, in ONE call:        run(command="bash bench/gpu_session.sh run", carry=[".benchcarry"],
#                                             timeout_s=600)
#      writes everything under $OUT (gpu.txt, tests.log, race-*.json, race-*.log, timeline.txt).
#
# The run part is time-boxed to fit one 600 s call: GPU tests (60 s), then the starter-shaped QLoRA
# race with every GPU lever (ours vs the docs' script vs the script with bf16 autocast; levers on our
# side only; 330 s), then the random 1B race (180 s). A part that runs out of time leaves its log;
# the parts after it still run. Record the tables in BENCHMARKS.md with the card's name.
set -u
MODE=${1:-run}
CARRY=.benchcarry
STARTER=${STARTER:-$HOME/.local/share/tunesmith/models/smollm2-135m-instruct}
DATA=${DATA:-/work/shared/data/formats/alpaca_en_demo.json}

if [ "$MODE" = prepare ]; then
    set -e
    mkdir -p "$CARRY/whl" "$CARRY/starter-skeleton"
    # The device's Python version is not known here: pure wheels once, multiprocess for each version.
    python3 -m pip download -q --no-deps --only-binary=:all: --platform manylinux_2_24_x86_64 \
        -d "$CARRY/whl" "bitsandbytes==0.50.2" platformdirs datasets dill liger-kernel
    for v in 3.10 3.11 3.12 3.13; do
        python3 -m pip download -q --no-deps --only-binary=:all: --python-version "$v" -d "$CARRY/whl" multiprocess
    done
    for f in config.json tokenizer.json tokenizer_config.json chat_template.jinja generation_config.json; do
        [ -f "$STARTER/$f" ] && cp "$STARTER/$f" "$CARRY/starter-skeleton/"
    done
    cp "$DATA" "$CARRY/alpaca_en_demo.json"
    grep -qx "$CARRY/" "$(git rev-parse --git-common-dir)/info/exclude" 2>/dev/null \
        || echo "$CARRY/" >> "$(git rev-parse --git-common-dir)/info/exclude"
    du -sh "$CARRY"
    exit 0
fi

OUT=${OUT:-/tmp/gpu-out}
mkdir -p "$OUT"
began=$(date +%s)
mark() { echo "$(( $(date +%s) - began )) s  $*" | tee -a "$OUT/timeline.txt"; }
mark "start"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$OUT/gpu.txt"
python3 -c "import torch, transformers, peft; print('torch', torch.__version__, 'transformers', transformers.__version__, 'peft', peft.__version__)" | tee -a "$OUT/gpu.txt"
python3 -m pip install -q --no-index --no-deps --find-links "$CARRY/whl" --target /tmp/site \
    bitsandbytes platformdirs datasets dill multiprocess liger-kernel 2>&1 | tail -3
export PYTHONPATH=/tmp/site:${PYTHONPATH:-}
python3 -c "import bitsandbytes, liger_kernel; print('bitsandbytes', bitsandbytes.__version__, 'liger_kernel ok')" 2>&1 | tee -a "$OUT/gpu.txt"
mark "wheels installed"

# GPU tests: the engine's CUDA paths (QLoRA, bf16, per-example attention) and the levers' switches.
timeout 60 python3 -m pytest -q -x -p no:cacheprovider -m gpu tests/test_train_gpu.py > "$OUT/tests.log" 2>&1
mark "gpu tests rc=$? ($(tail -1 "$OUT/tests.log"))"

RACE=(python3 bench/race.py --gpu --repeats 1 --model "$CARRY/starter-skeleton" --data "$CARRY/alpaca_en_demo.json")
# Starter shape, 256 rows: ours, baseline, baseline + bf16, then each GPU lever on our side
# (bench/plan.py GPU_LEVERS: paged 8-bit AdamW, compiled decoder layers, Liger off, packing off, eager).
timeout 330 "${RACE[@]}" --only train,levers --examples 256 --workdir /tmp/w-starter \
    --json "$OUT/race-starter.json" > "$OUT/race-starter.log" 2>&1
mark "starter race rc=$?"
# A random llama of about 1B (hidden 2048, 16 layers): speed and memory, ours vs baseline.
timeout 180 "${RACE[@]}" --only big --examples 128 --workdir /tmp/w-big \
    --json "$OUT/race-big.json" > "$OUT/race-big.log" 2>&1
mark "1B race rc=$?"
cp /tmp/w-starter/jobs/*.log /tmp/w-big/jobs/*.log "$OUT/" 2>/dev/null
tail -40 "$OUT/race-starter.log" "$OUT/race-big.log"

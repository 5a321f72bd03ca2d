#!/usr/bin/env bash
# Issue 15's GPU figures on one CUDA card, in one call of under ten minutes (run it with a 600 s limit).
# Runs from the repository root under the card machine's own python3/torch (nothing to install: the engine
# needs torch, torchvision, numpy, scipy, pandas, pyarrow, scikit-image, tqdm). One JSON line per
# configuration goes to stdout and to ${OUT:-benchmarks/out}/; whole-class runs also print a line per
# finished variant ("partial": true), so a step cut by its time limit still leaves its earlier variants.
#
#   1. ResNet-50 top three transitions (~150 nodes): exact float32 (shared forward) against the row-wise
#      exact engine (and IG alone of the largest transition both ways), channels-last and certified fp16.
#   2. ResNet-50 (random init), 50 photos, tau 16, k 50, 50 steps, the whole ten-transition class circuit:
#      exact float32, then certified bf16, TF32 and fp16; each reports seconds, nodes computed exactly,
#      and whether every node's core set equals float32's (it must).
#   3. ViT-B/16 (random init), 20 photos, top three transitions, at most 64 nodes per layer: exact vs
#      certified bf16 / TF32 / fp16.
set -u
out=${OUT:-benchmarks/out}
mkdir -p "$out"
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH} HF_HUB_OFFLINE=1 PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
python3 -c "import torch, torchvision; print('torch', torch.__version__, 'torchvision', torchvision.__version__)"
common=(--images 50 --size 224 --tau 16 --top-k 50 --ig-steps 50 --device cuda --batch-size 256
        --ig-batch-size "${IG_BATCH:-2048}" --repeats 1)
timeout 100 python3 benchmarks/engine.py --model resnet50 "${common[@]}" --transitions 3 --partial \
    --variants exact,exact_rowwise,exact_channels_last,cert_fp16 \
    | tee "$out/resnet50_top3.json"
timeout 370 python3 benchmarks/engine.py --model resnet50 "${common[@]}" --transitions 10 --partial \
    --variants exact,cert_bf16,cert_tf32,cert_fp16 | tee "$out/resnet50_class.json"
timeout 90 python3 benchmarks/engine.py --model vit_b_16 "${common[@]}" --images 20 --max-nodes 64 \
    --transitions 3 --partial --variants exact,cert_bf16,cert_tf32,cert_fp16 | tee "$out/vit_b_16_top3.json"

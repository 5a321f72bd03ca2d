#!/usr/bin/env bash
# The main job (README command 1): set up, then explain every class of the planted-concept world with its
# shipped classifier and tiny CLIP, offline, into the embedded knowledge base, and print which groups drive
# class bee (`--imagenet`: an ImageNet class of EfficientNet-Lite0 instead). Extra arguments go to `demo`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export HF_HUB_OFFLINE=1
exec .venv/bin/neurflow-kb demo "$@"

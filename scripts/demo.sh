#!/usr/bin/env bash
# The main job (README command 1): set up, then explain an ImageNet class of a real pretrained model,
# offline, into the embedded knowledge base, and print which groups drive it. Extra arguments go to `demo`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export HF_HUB_OFFLINE=1
exec .venv/bin/neurflow-kb demo "$@"

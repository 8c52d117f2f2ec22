#!/bin/bash
# The GPU checks (device machine): wheels for deepspeed, diffusers and their small deps carried in .whl/,
# this folder copied to .gpu/.
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
export PYTHONPATH=/tmp/site:$PWD/platform PYTHONUNBUFFERED=1 DS_BUILD_OPS=0
nvidia-smi --query-gpu=name,memory.total --format=csv
timeout 420 python3 .gpu/train_step.py 2>&1 | grep -v "Warning\|warn(" | tail -80
# the diffusion steps again in a fresh process, so that their peak memory is their own
# (the first pass's diffusion numbers include memory the judge steps left allocated)
ONLY=diffusion timeout 300 python3 .gpu/train_step.py 2>&1 | grep -v "Warning\|warn(" | tail -80

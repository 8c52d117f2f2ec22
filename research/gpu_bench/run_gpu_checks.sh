#!/usr/bin/env bash
# The GPU measurements on a lent GPU machine (H100 or H200), in one device run of under 10 minutes.
#
# Here, once (PyPI access):
#   python3 research/gpu_bench/pack_ray.py --python-version 3.12 --out .carry/ray-bundle.tar.xz
#   python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
#       --platform manylinux2014_x86_64 -d .carry/whl typer==0.25.1 rich shellingham markdown-it-py mdurl pygments
#   (the CLI's own needs beside the bundle; .carry/ is git-ignored)
# Then the device tool: run(command="bash research/gpu_bench/run_gpu_checks.sh", carry=[".carry"], timeout_s=590)
# The JSON files come back from $OUT; copy them to docs/results/ and the figures to docs/BENCHMARKS.md.
set -euo pipefail
OUT=${OUT:-/tmp/gpu_checks}
mkdir -p /tmp/site "$OUT"
tar -xJf .carry/ray-bundle.tar.xz -C /tmp/site
if ls .carry/whl/*.whl >/dev/null 2>&1; then
  python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .carry/whl/*.whl
fi
export PYTHONPATH=/tmp/site:$PWD/platform PATH=/tmp/site/bin:$PATH PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total --format=csv | tee "$OUT/gpu.txt"
ur() { python3 -m unireward.cli "$@"; }

# 1. the judge at the 7B shape: methods, stages (preprocess / vision / language model), TFLOP/s, share of the bf16 peak
timeout 200 ur bench judge --shape 7b --pairs 32 --batch-size 32 --repeats 2 --json > "$OUT/judge_7b_stages.json" || echo "judge: $?"
# 2. the whole 7B vision tower: batched span attention against the per-window loop (32 images and a 16-frame video)
timeout 90 ur bench vision --depth 32 --images 32 --video-frames 16 --json > "$OUT/vision_7b.json" || echo "vision: $?"
# 3. Ray on the GPU: curation (Ray Data, one GPU actor, against the in-process loop), the endpoint under load,
#    and group rewards against per-pair requests
python3 research/gpu_bench/check_bundle.py /tmp/site > "$OUT/bundle.txt" 2>&1 || echo "bundle check: $?"
timeout 90 ur bench curate --json > "$OUT/curate_gpu.json" || echo "curate: $?"
timeout 90 ur bench serve --concurrency 1 --concurrency 32 --seconds 6 --json > "$OUT/serve_gpu.json" || echo "serve: $?"
timeout 90 ur bench rewards --json > "$OUT/rewards_gpu.json" || echo "rewards: $?"
ls -la "$OUT"

#!/bin/bash
# Check a bundle on this (CPU) machine the way the GPU machine uses it: unpack it, make a bare venv
# (no site-packages of its own) whose only extra packages are the GPU image's, linked from the
# project's venv minus everything the bundle provides (fake_gpu_image.py), and run check_bundle.py
# with PYTHONPATH=<bundle>:platform and PATH=<bundle>/bin. Ray's workers inherit that interpreter
# and environment, so no process can pick Ray or its dependencies up from the project's venv.
#   bash research/gpu_bench/local_check.sh /tmp/raybundle311.tar.xz
set -euo pipefail
archive=${1:-/tmp/raybundle311.tar.xz}
venv=${VENV:-/work/main/.venv}
work=${WORK:-/tmp/raybundle-check}
base=$("$venv/bin/python" -c "import sys; print(sys._base_executable)")
rm -rf "$work" && mkdir -p "$work/site"
time tar -xJf "$archive" -C "$work/site"
"$base" -m venv --without-pip "$work/venv"
"$venv/bin/python" research/gpu_bench/fake_gpu_image.py "$work/site/MANIFEST.json" "$work/image"
echo "$work/image" > "$(echo "$work"/venv/lib/python3*/site-packages)/gpu_image.pth"
env -u VIRTUAL_ENV PYTHONNOUSERSITE=1 PYTHONPATH="$work/site:$PWD/platform" PATH="$work/site/bin:$PATH" \
    "$work/venv/bin/python" research/gpu_bench/check_bundle.py "$work/site"

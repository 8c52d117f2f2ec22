#!/bin/bash
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site .whl2/*.whl || exit 1
export PYTHONPATH=/tmp/site:$PWD/platform PYTHONUNBUFFERED=1 TOKENIZERS_PARALLELISM=false
python3 -c "from unireward.models.tiny import build_tiny_judge; build_tiny_judge('/tmp/base', size='small', seed=0)" 2>&1 | tail -1
for lr in 1e-3 3e-3; do
  OMP_NUM_THREADS=1 LR=$lr NW=7 EVERY=250 timeout 300 python3 .gpu/learn.py judge /tmp/base init_lr$lr 400 255 > $OUT/long_$lr.log 2>&1 &
done
wait
for lr in 1e-3 3e-3; do echo "== $lr"; grep "^init" $OUT/long_$lr.log | cut -c1-250; grep -i "error" $OUT/long_$lr.log | tail -3; done

#!/bin/bash
# Learnability on GPU: pretrain the tiny VLM, then judge-SFT curves from it and from the plain init.
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site .whl2/*.whl || exit 1
export PYTHONPATH=/tmp/site:$PWD/platform PYTHONUNBUFFERED=1 TOKENIZERS_PARALLELISM=false OMP_NUM_THREADS=1
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader; nproc
python3 -c "from unireward.models.tiny import build_tiny_judge; build_tiny_judge('/tmp/base', size='small', seed=0)" 2>&1 | tail -2
S=$(date +%s)
timeout 290 python3 .gpu/learn.py pretrain /tmp/base $OUT/pre 230 3000 32 2e-3 14 250 2>&1 | grep -v "Loading weights\|Writing model\|cap_pixels\|warn" | tail -30
echo "pretrain wall $(( $(date +%s) - S )) s"; ls -la $OUT/pre
S=$(date +%s)
for cfg in "$OUT/pre pre48 48" "$OUT/pre pre400 400" "/tmp/base init400 400"; do
  set -- $cfg
  timeout 200 python3 .gpu/learn.py judge $1 $2 $3 150 > $OUT/judge_$2.log 2>&1 &
done
wait
echo "judge wall $(( $(date +%s) - S )) s"
for t in pre48 pre400 init400; do echo "== $t"; grep "^$t" $OUT/judge_$t.log | tail -12; tail -3 $OUT/judge_$t.log | grep -i error; done

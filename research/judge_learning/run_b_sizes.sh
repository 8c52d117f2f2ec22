#!/bin/bash
# The random-init judge at the nano and mini sizes (the demo's recipe, 120 steps), from the repository root:
#   for s in nano mini; do .venv/bin/unireward models build-tiny --kind judge --size $s --out research/judge_learning/runs/judge-$s; done
#   bash research/judge_learning/run_b_sizes.sh
set -e
cd "$(dirname "$0")/../.."
for size in nano mini; do
EVAL_BEFORE=0 OMP_NUM_THREADS=1 THREADS=1 PYTHONPATH=platform nice -n 10 .venv/bin/python research/judge_learning/run_c.py research/judge_learning/runs/judge-$size rand-$size-logits-120 logits 120 2e-3 48 all 1 60 > research/judge_learning/runs_b_$size.log 2>&1
done

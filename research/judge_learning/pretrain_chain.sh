#!/bin/bash
# The two-stage base pretraining on the CPU (one intra-op thread, one rendering worker), from the repository root:
#   unireward models build-tiny --kind judge --size small --out research/judge_learning/runs/base-small-init
#   bash research/judge_learning/pretrain_chain.sh
set -e
cd "$(dirname "$0")/../.."
R=research/judge_learning/runs
export OMP_NUM_THREADS=1 PYTHONPATH=platform
nice -n 10 .venv/bin/unireward models pretrain-tiny $R/base-small-init --out $R/base-s1 --mix see --steps 2500 --batch-size 16 --lr 2e-3 --workers 1 --eval-every 500 --eval-examples 16 --seed 0 --device cpu > $R/pretrain-s1.log 2>&1
nice -n 10 .venv/bin/unireward models pretrain-tiny $R/base-s1 --out $R/base-s2 --mix slots --steps 1500 --batch-size 16 --lr 1e-3 --workers 1 --eval-every 500 --eval-examples 16 --seed 1 --device cpu > $R/pretrain-s2.log 2>&1

cd /work/exp18
for size in nano mini; do
EVAL_BEFORE=0 OMP_NUM_THREADS=1 THREADS=1 PYTHONPATH=platform nice -n 10 /work/main/.venv/bin/python research/judge_learning/run_c.py research/judge_learning/runs/judge-$size rand-$size-logits-120 logits 120 2e-3 48 all 1 60 > research/judge_learning/runs_b_$size.log 2>&1
done

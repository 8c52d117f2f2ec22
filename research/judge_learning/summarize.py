"""One table of every run's last evaluation: per task / deciding axis, accuracy (n)."""

import glob
import json
import os
from pathlib import Path

HERE = Path(__file__).resolve().parent

KEYS = [
    "image_generation/quality",
    "image_generation/alignment",
    "video_generation/quality",
    "video_generation/alignment",
    "image_understanding",
    "video_understanding",
]
out = {}
for f in sorted(glob.glob(str(HERE / "[bc]-*.json"))):
    h = json.load(open(f))
    if not h:
        continue
    r = h[-1]
    name = os.path.basename(f)[:-5]
    out[name] = dict(
        step=r["step"],
        train_seconds=r.get("train_seconds"),
        train_cpu_seconds=r.get("train_cpu_seconds"),
        **{k: dict(acc=r[k]["acc"], n=r[k]["n"], swap_agree=r[k].get("swap_agree")) for k in KEYS if k in r},
    )
    print(
        f"{name:34s} step {r['step']:4d} cpu {r.get('train_cpu_seconds')!s:>6s}s  "
        + "  ".join(
            f"{k.replace('_generation', 'G').replace('_understanding', 'U')}={r[k]['acc']:.2f}({r[k]['n']})"
            for k in KEYS
            if k in r
        )
    )
json.dump(out, open(HERE / "summary.json", "w"), indent=1)

"""Stand-in for the GPU image's site-packages, for checking a bundle on a machine without one.

    /work/main/.venv/bin/python research/gpu_bench/fake_gpu_image.py BUNDLE/MANIFEST.json /tmp/fake-image

Run with the project's venv: links (symlinks) into OUT the venv's files of the packages the GPU image
has (torch, transformers, ... and everything they require), leaving out every distribution that the
bundle provides, so that those can only come from the bundle. local_check.sh puts OUT on a bare
venv's path with a .pth file, as the image's site-packages would be.
"""

import importlib.metadata as md
import json
import os
import re
import sys

from packaging.requirements import Requirement

IMAGE = (
    "torch transformers accelerate peft pyarrow numpy pillow pyyaml requests packaging filelock huggingface_hub "
    "safetensors jinja2 psutil tqdm"
).split()


def norm(name):
    return re.sub(r"[-_.]+", "-", name).lower()


def closure(roots):
    seen, todo = set(), list(roots)
    while todo:
        name = todo.pop()
        if norm(name) in seen:
            continue
        try:
            dist = md.distribution(name)
        except md.PackageNotFoundError:
            continue
        seen.add(norm(name))
        for r in dist.requires or []:
            req = Requirement(r)
            if not req.marker or req.marker.evaluate({"extra": ""}):
                todo.append(req.name)
    return seen


def main():
    manifest, out = sys.argv[1], sys.argv[2]
    with open(manifest) as f:
        provided = {norm(n) for n in json.load(f)["packages"]}
    site = str(md.distribution("torch").locate_file(""))  # the venv's site-packages
    os.makedirs(out, exist_ok=True)
    image = closure(IMAGE)
    linked = []
    for key in sorted(image - provided):
        dist = md.distribution(key)
        for top in sorted({str(f).split("/")[0] for f in dist.files or []}):
            src, dst = os.path.join(site, top), os.path.join(out, top)
            if top not in ("..", "__pycache__", "bin") and os.path.exists(src) and not os.path.lexists(dst):
                os.symlink(src, dst)
        linked.append(f"{key}=={dist.version}")
    print("image:", " ".join(linked))
    print("left to the bundle:", " ".join(sorted(image & provided)))


if __name__ == "__main__":
    main()

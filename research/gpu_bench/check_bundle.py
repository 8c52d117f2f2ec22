"""Smoke test of an unpacked Ray bundle (see pack_ray.py and README.md).

    python research/gpu_bench/check_bundle.py /tmp/site

Asserts that `ray` is imported from the given bundle directory, starts a fresh local Ray
(never an existing cluster: address="local", its own temp dir), runs a tiny Ray Data pipeline,
a one-worker Ray Train TorchTrainer, a Ray Serve deployment answering one HTTP request on
127.0.0.1, imports deepspeed and diffusers, shuts everything down and prints one JSON line per
step. Exits non-zero at the first failure.
"""

import glob
import json
import os
import shutil
import socket
import sys
import tempfile
import time
import urllib.request


def step(name, fn):
    t = time.time()
    out = fn()
    print(json.dumps({"step": name, "ok": True, "s": round(time.time() - t, 1), "out": out}), flush=True)
    return out


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main():
    bundle = os.path.realpath(sys.argv[1])
    # a loaded 2-core machine can take over the default 60 s to start the dashboard agent
    os.environ.setdefault("RAY_agent_register_timeout_ms", "600000")
    import ray

    def where():
        mods = {}
        for name in ("ray", "pandas", "fastapi", "uvicorn", "grpc", "pydantic", "torch", "pyarrow", "numpy"):
            try:
                m = __import__(name)
                mods[name] = f"{getattr(m, '__version__', '?')} {m.__file__}"
            except ImportError as e:
                mods[name] = f"MISSING: {e}"
        assert os.path.realpath(ray.__file__).startswith(bundle + os.sep), ray.__file__
        manifest = os.path.join(bundle, "MANIFEST.json")
        if os.path.exists(manifest):  # a bundle packed for another Python would fail on its .so files
            with open(manifest) as f:
                packed_for = json.load(f)["python_version"]
            assert sys.version.startswith(packed_for + "."), (packed_for, sys.version)
        return {"ray": ray.__version__, "python": sys.version.split()[0], "from": mods, "sys_path": sys.path}

    step("import", where)
    tmp = tempfile.mkdtemp(prefix="rb", dir="/tmp")
    step(
        "init",
        lambda: str(
            ray.init(
                address="local", num_cpus=1, include_dashboard=False, _temp_dir=tmp, log_to_driver=False
            ).address_info["gcs_address"]
        ),
    )
    try:
        step("data", lambda: ray.data.range(10).map(lambda r: r).count())

        def train():
            from ray.train import RunConfig, ScalingConfig
            from ray.train.torch import TorchTrainer

            def loop(config):
                import ray.train
                import torch

                w = torch.nn.Linear(2, 1)
                loss = w(torch.ones(4, 2)).pow(2).mean()
                loss.backward()
                with open(config["out"], "w") as f:
                    json.dump({"loss": float(loss), "world_size": ray.train.get_context().get_world_size()}, f)
                ray.train.report({"loss": float(loss)})

            out = os.path.join(tmp, "train_loop.json")
            res = TorchTrainer(
                loop,
                train_loop_config={"out": out},
                scaling_config=ScalingConfig(num_workers=1, use_gpu=False),
                run_config=RunConfig(storage_path=os.path.join(tmp, "train")),
            ).fit()
            assert res.error is None, res.error
            with open(out) as f:
                return json.load(f)

        if os.environ.get("SKIP_TRAIN") != "1":
            step("train", train)

        def serve_one():
            from ray import serve

            @serve.deployment(ray_actor_options={"num_cpus": 0})
            class Echo:
                async def __call__(self, request):
                    return {"echo": request.query_params.get("x")}

            port = free_port()
            serve.start(http_options={"host": "127.0.0.1", "port": port})
            serve.run(Echo.bind(), route_prefix="/echo")
            body = urllib.request.urlopen(f"http://127.0.0.1:{port}/echo?x=42", timeout=60).read()
            serve.shutdown()
            return json.loads(body)

        step("serve", serve_one)
    finally:
        ray.shutdown()

    def logs():
        # a Ray process that lacks a module logs it and may go on in a reduced mode: look for that
        hits = []
        for f in glob.glob(os.path.join(tmp, "session_*", "logs", "*")):
            if os.path.isfile(f):
                with open(f, errors="replace") as fh:
                    hits += [f"{os.path.basename(f)}: {x.strip()}" for x in fh if "No module named" in x]
        shutil.rmtree(tmp, ignore_errors=True)
        assert not hits, hits[:20]
        return "no 'No module named' in the session logs"

    step("logs", logs)

    def libs():
        import deepspeed
        import diffusers

        return {
            "deepspeed": deepspeed.__version__,
            "diffusers": diffusers.__version__,
            "deepspeed_from": deepspeed.__file__,
            "diffusers_from": diffusers.__file__,
            # deepspeed JIT-builds its CUDA ops with ninja: the bundle's bin/ must be on PATH
            "ninja_on_path": shutil.which("ninja"),
            "ray_cli_on_path": shutil.which("ray"),
        }

    step("imports", libs)
    print("BUNDLE CHECK PASSED", flush=True)


if __name__ == "__main__":
    main()

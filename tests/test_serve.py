"""The reward endpoint with real HTTP against a locally running Serve app on the tiny judge: every
route, every error code, auth, metrics, the official OpenAI client, our clients, and a curate spec
that uses the served judge."""

import asyncio
import base64
import json
import os
import socket

import httpx
import pytest

from unireward.config import ConfigError, ServeConfig, parse_spec
from unireward.io import schema
from unireward.io.media import load_video, to_data_uri
from unireward.judge.records import read_items
from unireward.judge.types import JudgeItem, Status
from unireward.serve.app import auth_required, check_auth_config
from unireward.serve.client import AsyncRewardClient, EndpointError, RewardClient

pytestmark = pytest.mark.slow
TOKEN = "test-token-123"


def _port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


@pytest.fixture(scope="module")
def endpoint(ray_local, tiny_judge_dir):
    from unireward.serve import local

    os.environ["UNIREWARD_TEST_TOKENS"] = f"other-token,{TOKEN}"
    metrics_port = ray_local["metrics_port"]
    url = local.start(
        args=dict(
            judge=dict(model=str(tiny_judge_dir)),
            port=_port(),
            require_auth=True,
            tokens_env="UNIREWARD_TEST_TOKENS",
            max_body_mb=1,
            max_images_per_request=6,
            max_items_per_request=8,
            max_pending=4,
            max_new_tokens_limit=48,
            s3_buckets=["allowed-bucket"],
        ),
        deployment=dict(ray_actor_options={"num_cpus": 0.5}),
    )
    yield dict(url=url, metrics=f"http://127.0.0.1:{metrics_port}/metrics", port=int(url.rsplit(":", 1)[1]))
    local.stop(shutdown=True)


def H(token=TOKEN):
    return {"authorization": f"Bearer {token}"}


def uri(path, mime="image/png"):
    with open(path, "rb") as f:
        return to_data_uri(f.read(), mime)


def _media(world, task, k=0):
    items, _ = read_items(world.items[task])
    return items[k]


def post(ep, path, body, token=TOKEN, **kw):
    return httpx.post(ep["url"] + path, json=body, headers=H(token) if token else {}, timeout=120, **kw)


def pair_body(world, **extra):
    it = _media(world, "image_generation")
    return dict(task="image_generation", prompt=it.prompt, candidates=[uri(c) for c in it.candidates], **extra)


def assert_error(resp, status, part):
    assert resp.status_code == status, resp.text
    err = resp.json()["error"]
    assert err["code"] == status and part in err["message"], err


def test_health_readiness_openapi(endpoint):
    assert httpx.get(endpoint["url"] + "/healthz").json() == {"status": "ok"}
    ready = httpx.get(endpoint["url"] + "/readyz").json()
    assert ready["status"] == "ready" and ready["model"] == "UnifiedReward"
    spec = httpx.get(endpoint["url"] + "/openapi.json").json()
    assert {"/v1/judge", "/v1/judge/batch", "/v1/chat/completions", "/v1/models"} <= set(spec["paths"])
    assert "JudgeRequest" in json.dumps(spec)


def test_auth(endpoint):
    assert_error(httpx.get(endpoint["url"] + "/v1/models"), 401, "bearer")
    r = httpx.get(endpoint["url"] + "/v1/models", headers=H("wrong"))
    assert_error(r, 401, "bearer")
    assert r.headers["www-authenticate"] == "Bearer"
    r = httpx.get(endpoint["url"] + "/v1/models", headers=H())
    assert r.status_code == 200 and r.json()["data"][0]["id"] == "UnifiedReward"
    assert httpx.get(endpoint["url"] + "/v1/models", headers=H("other-token")).status_code == 200
    assert_error(post(endpoint, "/v1/judge", {"task": "x"}, token=None), 401, "bearer")


def test_auth_is_required_off_loopback(monkeypatch, tiny_judge_dir):
    cfg = ServeConfig(judge=dict(model=str(tiny_judge_dir)), host="0.0.0.0", tokens_env="NO_SUCH_TOKENS_VAR")
    assert auth_required(cfg)
    with pytest.raises(ValueError, match="needs bearer tokens"):
        check_auth_config(cfg)
    monkeypatch.setenv("NO_SUCH_TOKENS_VAR", "a,b")
    assert check_auth_config(cfg) == {"a", "b"}
    assert not auth_required(ServeConfig(judge=dict(model="m"), host="127.0.0.1"))


def test_judge_all_kinds(endpoint, world):
    r = post(endpoint, "/v1/judge", pair_body(world, swap=True, id="p1"))
    j = r.json()
    assert r.status_code == 200 and j["status"] == "ok" and j["id"] == "p1"
    assert sum(j["probs"].values()) == pytest.approx(1.0)
    assert len(j["orders"]) == 2 and j["agreement"] in (True, False)
    assert j["provenance"]["protocol"] == "qwen/image_generation/pair_rank"
    gen = post(endpoint, "/v1/judge", pair_body(world, method="generate")).json()
    assert gen["method"] == "generate" and "raw_text" in gen and gen["status"] in ("ok", "unparsed")
    point = pair_body(world)
    point["candidates"] = point["candidates"][:1]
    assert 1 <= post(endpoint, "/v1/judge", point).json()["score"] <= 5
    multi = post(endpoint, "/v1/judge", dict(point, mode="point_multi")).json()
    assert set(multi["dims"]) == {"alignment", "coherence", "style"}
    und = _media(world, "image_understanding")
    r = post(
        endpoint,
        "/v1/judge",
        dict(task="image_understanding", prompt=und.prompt, candidates=und.candidates, context=uri(und.context)),
    )
    assert r.json()["status"] == "ok" and set(r.json()["probs"]) == {"first", "second"}
    vid = _media(world, "video_generation")
    mp4s = [uri(c, "video/mp4") for c in vid.candidates]
    assert (
        post(endpoint, "/v1/judge", dict(task="video_generation", prompt=vid.prompt, candidates=mp4s)).json()["status"]
        == "ok"
    )
    frames = [to_data_uri(_png(f), "image/png") for f in load_video(vid.candidates[0]).frames[:3]]
    r = post(endpoint, "/v1/judge", dict(task="video_generation", prompt=vid.prompt, candidates=[frames, frames]))
    assert r.json()["status"] == "ok"


def _png(img):
    import io

    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


def test_batch_keeps_going_past_a_bad_item(endpoint, world):
    good = pair_body(world)
    bad = dict(good, candidates=[good["candidates"][0], "data:image/png;base64," + base64.b64encode(b"junk").decode()])
    r = post(endpoint, "/v1/judge/batch", {"items": [good, bad, dict(good, id="third")]})
    assert r.status_code == 200
    js = r.json()["judgments"]
    assert [j["status"] for j in js] == ["ok", "invalid_input", "ok"]
    assert "decode_failed" in js[1]["reason"] and js[2]["id"] == "third"
    assert_error(post(endpoint, "/v1/judge/batch", {"items": [good] * 9}), 400, "at most 8")


def test_error_codes(endpoint, world):
    body = pair_body(world)
    assert_error(
        post(endpoint, "/v1/judge", dict(body, candidates=["/etc/passwd", body["candidates"][1]])),
        400,
        "server paths are not accepted",
    )
    assert_error(
        post(endpoint, "/v1/judge", dict(body, candidates=["http://example.com/a.png"] * 2)),
        400,
        "http(s) media is disabled",
    )
    assert_error(post(endpoint, "/v1/judge", dict(body, candidates=["s3://other/a.png"] * 2)), 400, "not allowed")
    broken = "data:image/png;base64," + base64.b64encode(b"\x89PNG\r\n\x1a\n broken").decode()
    assert_error(post(endpoint, "/v1/judge", dict(body, candidates=[broken, broken])), 400, "decode_failed")
    assert_error(post(endpoint, "/v1/judge", dict(body, task="audio")), 422, "task")
    assert_error(post(endpoint, "/v1/judge", dict(body, unexpected=1)), 422, "unexpected")
    assert_error(post(endpoint, "/v1/judge", dict(body, context=body["candidates"][0])), 400, "no context")
    frames = [body["candidates"][0]] * 7
    assert_error(
        post(endpoint, "/v1/judge", dict(task="video_generation", prompt="x", candidates=[frames])), 400, "at most 6"
    )
    big = dict(body, prompt="x" * 2**20)  # the body is over the endpoint's 1 MiB, whatever the images weigh
    assert_error(post(endpoint, "/v1/judge", big), 413, "over")
    assert_error(post(endpoint, "/v1/judge", dict(body, timeout_s=1e-6)), 503, "timed out")


def test_overload_is_shed_with_429(endpoint, world):
    body = pair_body(world, method="generate")

    async def burst():
        async with httpx.AsyncClient(timeout=120, headers=H()) as c:
            return await asyncio.gather(*(c.post(endpoint["url"] + "/v1/judge", json=body) for _ in range(24)))

    codes = [r.status_code for r in asyncio.run(burst())]
    assert set(codes) <= {200, 429} and codes.count(429) >= 1 and codes.count(200) >= 4
    rejected = next(r for r in asyncio.run(burst()) if r.status_code == 429)
    assert rejected.json()["error"]["type"] == "rate_limit_error" and rejected.headers["retry-after"] == "1"


def test_openai_client(endpoint, world):
    import openai

    img = uri(_media(world, "image_generation").candidates[0])
    client = openai.OpenAI(base_url=endpoint["url"] + "/v1", api_key=TOKEN)
    out = client.chat.completions.create(
        model="UnifiedReward",
        max_tokens=6,
        temperature=0,
        messages=[
            {
                "role": "user",
                "content": [
                    {"type": "image_url", "image_url": {"url": img}},
                    {"type": "text", "text": "Rate this image. Final Score:"},
                ],
            }
        ],
        extra_body={"do_sample": False},  # the original client's field: ignored, as vLLM does
    )
    assert out.object == "chat.completion" and out.choices[0].message.role == "assistant"
    assert out.usage.completion_tokens <= 6 and out.usage.prompt_tokens > 0
    again = client.chat.completions.create(
        model="UnifiedReward", max_tokens=6, temperature=0, messages=[{"role": "user", "content": "Hello"}]
    )
    assert again.choices[0].finish_reason in ("stop", "length")
    with pytest.raises(openai.BadRequestError):
        client.chat.completions.create(model="UnifiedReward", messages=[{"role": "user", "content": "x"}], n=2)
    with pytest.raises(openai.AuthenticationError):
        openai.OpenAI(base_url=endpoint["url"] + "/v1", api_key="nope").models.list()


def test_clients_of_the_original_server_work_unchanged(endpoint, world):
    """The original vLLM client sends max_tokens 4096 and do_sample: the endpoint generates at most its
    own limit (48 here) and says so in a header and in usage, instead of refusing the request."""
    img = uri(_media(world, "image_generation").candidates[0], "image/jpeg")
    body = {
        "model": "UnifiedReward",
        "do_sample": False,
        "max_tokens": 4096,
        "messages": [
            {
                "role": "user",
                "content": [
                    {"type": "image_url", "image_url": {"url": img}},
                    {"type": "text", "text": "Which image is better?"},
                ],
            }
        ],
    }
    r = post(endpoint, "/v1/chat/completions", body)
    assert r.status_code == 200, r.text
    out = r.json()
    assert r.headers["x-max-tokens-clamped"] == "4096->48"
    assert out["usage"]["max_tokens_clamped_from"] == 4096 and out["usage"]["completion_tokens"] <= 48
    within = post(endpoint, "/v1/chat/completions", dict(body, max_tokens=5))
    assert within.status_code == 200 and "x-max-tokens-clamped" not in within.headers
    assert "max_tokens_clamped_from" not in within.json()["usage"] and within.json()["usage"]["completion_tokens"] <= 5


def test_fastapis_own_errors_have_the_endpoints_shape(endpoint):
    deep = "[" * 100_000 + "]" * 100_000  # JSON nested too deeply for the parser
    r = httpx.post(
        endpoint["url"] + "/v1/judge", content=deep, headers={**H(), "content-type": "application/json"}, timeout=60
    )
    assert r.status_code in (400, 422) and set(r.json()) == {"error"}, r.text
    assert r.json()["error"]["code"] == r.status_code
    missing = httpx.get(endpoint["url"] + "/v1/no-such-route", headers=H(), timeout=60)
    assert missing.status_code == 404 and missing.json()["error"]["type"] == "not_found"


def test_clients(endpoint, world):
    items, _ = read_items(world.items["image_generation"])
    und, _ = read_items(world.items["image_understanding"])
    vid, _ = read_items(world.items["video_understanding"])
    batch = (
        items[:4] + und[:2] + vid[:1] + [JudgeItem("image_generation", "x", ["/no/such.png", items[0].candidates[0]])]
    )
    with RewardClient(endpoint["url"], token=TOKEN, chunk_size=3, max_concurrency=2) as c:
        assert c.health() and c.models() == ["UnifiedReward"]
        one = c.judge(items[0], swap=True)
        assert one.status is Status.OK and one.orders is not None
        out = c.judge_batch(batch)
        assert [j.status for j in out[:7]] == [Status.OK] * 7
        assert out[7].status is Status.INVALID_INPUT and "not_found" in out[7].reason
        with pytest.raises(EndpointError) as e:
            c.judge(JudgeItem("image_generation", "x", [items[0].candidates[0]] * 2, context=und[0].context))
        assert e.value.status == 400

    async def run_async():
        async with AsyncRewardClient(endpoint["url"], token=TOKEN, max_concurrency=2) as c:
            return await c.judge_batch(items[:5], method="logits")

    assert [j.status for j in asyncio.run(run_async())] == [Status.OK] * 5
    dead = RewardClient(f"http://127.0.0.1:{_port()}", max_retries=2, backoff_s=0.01)
    with pytest.raises(EndpointError, match="after 3 attempts"):
        dead.models()


def test_metrics_are_exported(endpoint, world):
    import time

    post(endpoint, "/v1/judge", pair_body(world))
    deadline = time.time() + 30
    text = ""
    while time.time() < deadline:
        text = httpx.get(endpoint["metrics"]).text
        if "ray_unireward_requests" in text and "ray_unireward_batch_size" in text:
            break
        time.sleep(1)
    for name in (
        "ray_unireward_requests",
        "ray_unireward_request_latency_s",
        "ray_unireward_batch_size",
        "ray_unireward_judgments",
    ):
        assert name in text, name


def test_curate_with_a_served_judge(endpoint, world, tmp_path, monkeypatch):
    from unireward.pipelines.batch import run_spec

    monkeypatch.setenv("UNIREWARD_API_TOKEN", TOKEN)
    spec = parse_spec(
        dict(
            kind="curate",
            name="remote",
            input=world.pools["image_understanding"],
            output=str(tmp_path / "out"),
            judge=dict(model="served", endpoint=endpoint["url"]),
            resources=dict(batch_size=2, cpus_per_actor=0.25, decode_cpus=0.25),
            max_error_fraction=0.5,
        )
    )
    s = run_spec(spec)
    assert s["prompts"] == 2 and s["failed_prompts"] == 0
    rows = schema.read_parquet(str(tmp_path / "out" / "prompts" / "part-00000.parquet"))
    assert len(rows) == 2
    prefs = (
        [
            json.loads(p["provenance"])
            for p in schema.read_parquet(
                str(tmp_path / "out" / "preferences" / "task=image_understanding" / "part-00000.parquet")
            )
        ]
        if s["preferences"]
        else []
    )
    assert all(p["endpoint"] == endpoint["url"] for p in prefs)


def test_serve_config_file_is_valid():
    from unireward.serve import local

    config = local.read_config()
    cfg, opts, http = local.app_and_options(config)
    assert opts["max_ongoing_requests"] >= cfg.max_batch_size  # lets batches fill
    assert opts["autoscaling_config"]["min_replicas"] <= opts["autoscaling_config"]["max_replicas"]
    # as written: for a cluster (all interfaces, so tokens are required; a GPU per replica)
    assert http == dict(host="0.0.0.0", port=8000) and opts["ray_actor_options"]["num_gpus"] == 1
    with pytest.raises(ValueError, match="UNIREWARD_API_TOKENS"):
        from unireward.serve.app import check_auth_config

        check_auth_config(cfg)
    # run locally: loopback unless a host is given, CPU replicas when there is no GPU
    cfg, opts, http = local.local_options(config, None, None, dict(CPU=2.0))
    assert http["host"] == "127.0.0.1" and opts["ray_actor_options"] == dict(num_cpus=2.0, num_gpus=0.0)
    cfg, opts, http = local.local_options(config, dict(host="0.0.0.0"), None, dict(CPU=16.0, GPU=1.0))
    assert http["host"] == "0.0.0.0" and opts["ray_actor_options"] == dict(num_cpus=4, num_gpus=1)
    with pytest.raises(ConfigError, match="max_batch_size"):
        local.app_and_options(local.read_config(), args=dict(max_batch_size=0))


def test_unireward_serve_command(tiny_judge_dir):
    import signal
    import subprocess
    import sys
    import time

    port = _port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "unireward.cli",
            "serve",
            "--model",
            str(tiny_judge_dir),
            "--port",
            str(port),
            "--set",
            "max_batch_size=8",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        deadline, ready = time.time() + 180, False
        while time.time() < deadline and proc.poll() is None:
            try:
                ready = httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=2).status_code == 200
            except httpx.HTTPError:
                pass
            if ready:
                break
            time.sleep(1)
        assert ready, proc.stdout.read()[-3000:] if proc.poll() is not None else "not ready"
        # loopback without tokens: no auth needed
        assert httpx.get(f"http://127.0.0.1:{port}/v1/models").json()["data"][0]["root"] == str(tiny_judge_dir)
    finally:
        proc.send_signal(signal.SIGTERM)  # what `kill` or a container stop sends: a clean shutdown
        try:
            proc.wait(timeout=120)
        finally:
            try:
                os.killpg(proc.pid, signal.SIGKILL)  # whatever is left of its local Ray
            except ProcessLookupError:
                pass
    assert proc.returncode == 0, proc.stdout.read()[-3000:]


def test_a_checkpoint_that_cannot_load_fails_the_start_with_its_reason(endpoint, tmp_path):
    from unireward.serve import local

    broken = tmp_path / "broken-judge"
    broken.mkdir()
    (broken / "config.json").write_text("{not json")
    with pytest.raises(RuntimeError, match="failed to start: .*not a valid JSON file"):
        local.start(
            args=dict(judge=dict(model=str(broken)), port=endpoint["port"]),
            name="broken",
            deployment=dict(autoscaling_config=None, num_replicas=1, ray_actor_options={"num_cpus": 0.25}),
            wait_s=150,
        )
    assert httpx.get(endpoint["url"] + "/healthz").status_code == 200  # the good app is untouched


def test_unireward_serve_without_a_model_here_fails_before_starting_anything():
    import subprocess
    import sys

    r = subprocess.run(
        [sys.executable, "-m", "unireward.cli", "serve", "--port", str(_port())],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 2 and "not found on this machine: pass --model" in r.stderr
    assert "Started a local Ray" not in r.stderr

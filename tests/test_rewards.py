"""Group rewards for RL: the arithmetic against hand-computed values, the /v1/rewards route over
real HTTP on a local Serve app with the tiny judge (every scheme, swap, invalid members, limits,
auth, metrics), the clients, the TRL reward function against the live endpoint, and TRL's
GRPOTrainer on the tiny VLM taking its rewards from the endpoint."""

import asyncio
import os
import time
from pathlib import Path

import httpx
import pyarrow.parquet as pq
import pytest
from PIL import Image

from model_fixtures import free_port
from unireward.io.media import load_video, to_data_uri
from unireward.judge.group import NO_RIVAL, bradley_terry, group_rewards, plan_group
from unireward.judge.types import Judgment, Status
from unireward.serve.client import AsyncRewardClient, EndpointError, RewardClient

TOKEN = "rl-token"


def J(verdict=None, status=Status.OK, probs=None, score_norm=None, score=None, reason=None):
    return Judgment(
        None, "image_generation", "pair_rank", "generate", status, reason=reason, verdict=verdict, probs=probs,
        score=score, score_norm=score_norm,
    )  # fmt: skip


# ------------------------------------------------------------------------------ the arithmetic
def test_plan_judges_each_distinct_pair_once_per_order():
    plan = plan_group("pairwise_winrate", ["a", "b", "a", "c", "x"], [None, None, None, None, "bad"], swap=True)
    assert plan.rep == [0, 1, 0, 3, None] and plan.valid == [0, 1, 2, 3] and plan.representatives == [0, 1, 3]
    assert plan.jobs == [(0, 1), (1, 0), (0, 3), (3, 0), (1, 3), (3, 1)]
    assert plan_group("pairwise_winrate", "abc", [None] * 3, swap=False).jobs == [(0, 1), (0, 2), (1, 2)]
    point = plan_group("pointwise", "aba", [None] * 3, swap=True)
    assert point.jobs == [(0,), (1,)] and point.swap is False
    with pytest.raises(ValueError, match="scheme must be one of"):
        plan_group("elo", "ab", [None, None])


def test_win_rates_ties_unparsed_duplicates_and_invalid_by_hand():
    # candidates 0, 1, 2; 3 is invalid; 4 is identical to 1
    plan = plan_group("pairwise_winrate", ["A", "B", "C", "D", "B"], [None, None, None, "decode_failed: x", None])
    verdicts = {
        (0, 1): J("first"),  # 0 beats 1
        (1, 0): J("second"),  # 0 beats 1 again
        (0, 2): J("tie"),
        (2, 0): J(status=Status.UNPARSED, reason="no verdict"),
        (1, 2): J("first"),  # 1 beats 2
        (2, 1): J("first"),  # 2 beats 1: the orders disagree
    }
    rewards, d = group_rewards(plan, [verdicts[job] for job in plan.jobs])
    # 0: beats 1 twice, beats 4 (= 1) twice, 0.5 + 0.5 against 2 -> 5 of 6
    # 1: loses to 0 twice, 1 of 2 against 2, ties its duplicate 4 twice -> 2 of 6 (likewise 4)
    # 2: 0.5 + 0.5 against 0, 1 of 2 against 1, 1 of 2 against 4 -> 3 of 6
    assert rewards == pytest.approx([5 / 6, 2 / 6, 3 / 6, None, 2 / 6]) and rewards[3] is None
    c = d["candidates"]
    assert c[0] == dict(reason=None, wins=4, losses=0, ties=1, unparsed=1, failed=0, comparisons=6)
    assert c[1] == dict(reason=None, wins=1, losses=3, ties=2, unparsed=0, failed=0, comparisons=6)
    assert c[4]["duplicate_of"] == 1 and c[4]["ties"] == 2
    assert c[3] == dict(reason="decode_failed: x")
    assert (d["valid"], d["invalid"], d["duplicates"], d["judgments"]) == (4, 1, 1, 6)
    assert (d["ties"], d["unparsed"], d["failed"]) == (1, 1, 0)
    assert d["swap_agreement"] == 0.5  # (0,1) agree, (1,2) disagree, (0,2) has an unparsed order
    # every comparison hands out exactly one point between its two sides
    assert sum(rewards[i] * c[i]["comparisons"] for i in (0, 1, 2, 4)) == pytest.approx(4 * 6 / 2)


def test_win_rate_without_swap_and_failed_judgments():
    plan = plan_group("pairwise_winrate", "abc", [None] * 3, swap=False)
    js = [J("second"), J(status=Status.ERROR, reason="oom"), J("tie")]  # (0,1) (0,2) (1,2)
    rewards, d = group_rewards(plan, js)
    assert rewards == pytest.approx([(0 + 0.5) / 2, (1 + 0.5) / 2, (0.5 + 0.5) / 2])
    assert d["failed"] == 1 and d["ties"] == 1 and "swap_agreement" not in d


def test_a_lone_valid_candidate_has_no_reward():
    plan = plan_group("pairwise_winrate", "ab", [None, "empty answer"])
    assert plan.jobs == []
    rewards, d = group_rewards(plan, [])
    assert rewards == [None, None] and d["candidates"][0]["reason"] == NO_RIVAL


def test_pointwise_rewards_and_unparsed_points():
    plan = plan_group("pointwise", ["a", "b", "a", "c"], [None] * 4)
    js = [
        J(score=4.0, score_norm=0.75),
        J(status=Status.UNPARSED, reason="no score in 'hmm'"),
        J(score=1, score_norm=0.0),
    ]
    rewards, d = group_rewards(plan, js)
    assert rewards == [0.75, None, 0.75, 0.0]
    assert d["candidates"][1]["reason"] == "unparsed: no score in 'hmm'" and d["candidates"][2]["duplicate_of"] == 0


def test_bradley_terry_rewards_are_centred_and_ordered():
    plan = plan_group("bradley_terry", "abcd", [None, None, None, "bad"], swap=True)
    # 0 > 1 > 2, soft probabilities as the logits method gives them; one order of (1,2) unparsed
    p = {(0, 1): 0.9, (1, 0): 0.2, (0, 2): 0.95, (2, 0): 0.1, (1, 2): 0.8, (2, 1): None}
    js = [
        J(status=Status.UNPARSED)
        if p[job] is None
        else J("first", probs={"first": p[job], "second": 1 - p[job], "tie": 0})
        for job in plan.jobs
    ]
    rewards, d = group_rewards(plan, js)
    assert rewards[3] is None and rewards[0] > rewards[1] > rewards[2]
    assert sum(rewards[:3]) == pytest.approx(0, abs=1e-9) and d["used"] == 5
    outcomes = [(0, 1, 0.9), (1, 0, 0.2), (0, 2, 0.95), (2, 0, 0.1), (1, 2, 0.8)]
    assert rewards[:3] == pytest.approx(list(bradley_terry(3, outcomes)))  # the curation code's fit


def test_bradley_terry_duplicates_share_the_strength_and_count_in_the_centre():
    plan = plan_group("bradley_terry", "aba", [None] * 3, swap=False)
    rewards, _ = group_rewards(plan, [J("first")])
    assert rewards[0] == rewards[2] > 0 > rewards[1]
    assert sum(rewards) == pytest.approx(0, abs=1e-9)


# ------------------------------------------------------------------------------ the route
def uri(path, mime="image/png"):
    return to_data_uri(Path(path).read_bytes(), mime)


@pytest.fixture(scope="module")
def pools(world):
    root = Path(world.root)
    out = {}
    for task, path in world.pools.items():
        rows = pq.read_table(path).to_pylist()
        for r in rows:
            for c in r["candidates"]:
                if c["media"]:
                    c["media"] = str(root / c["media"])
            if r["context"]:
                r["context"] = str(root / r["context"])
        out[task] = rows
    return out


@pytest.fixture(scope="module")
def endpoint(ray_local, tiny_judge_dir):
    from unireward.serve import local

    os.environ["UNIREWARD_RL_TOKENS"] = TOKEN
    url = local.start(
        args=dict(
            judge=dict(model=str(tiny_judge_dir)),
            port=free_port(),
            require_auth=True,
            tokens_env="UNIREWARD_RL_TOKENS",
            max_group=6,
            max_images_per_request=8,
        ),
        deployment=dict(ray_actor_options={"num_cpus": 0.5}),
    )
    yield dict(url=url, metrics=f"http://127.0.0.1:{ray_local['metrics_port']}/metrics")
    local.stop(shutdown=True)


def post(ep, body, token=TOKEN):
    return httpx.post(ep["url"] + "/v1/rewards", json=body, headers={"authorization": f"Bearer {token}"}, timeout=120)


def image_group(pools, n=4):
    """A prompt and ``n`` pairwise distinct images (the world renders two flawless candidates of a
    prompt identically, and the endpoint judges duplicates once, so the images are gathered across
    prompts: what is under test is the endpoint, not the judge's taste)."""
    rows = pools["image_generation"]
    seen, paths = set(), []
    for row in rows:
        for c in row["candidates"]:
            data = Path(c["media"]).read_bytes()
            if data not in seen:
                seen.add(data)
                paths.append(c["media"])
    assert len(paths) >= n, "the test world has too few distinct images"
    return rows[0]["prompt"], paths[:n]


@pytest.mark.slow
def test_every_scheme_over_http(endpoint, pools):
    prompt, paths = image_group(pools)
    cands = [uri(p) for p in paths]  # four distinct images
    out = {}
    for scheme, swap, judgments in [
        ("pairwise_winrate", True, 12),
        ("pairwise_winrate", False, 6),
        ("pointwise", True, 4),
        ("bradley_terry", True, 12),
    ]:
        r = post(endpoint, dict(task="image_generation", prompt=prompt, candidates=cands, scheme=scheme, swap=swap))
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["scheme"] == scheme and len(body["rewards"]) == 4
        assert all(x is not None for x in body["rewards"]), body
        d = body["details"]
        assert d["judgments"] == judgments and d["valid"] == 4 and d["latency_s"] > 0
        assert d["provenance"]["method"] == "logits" and d["provenance"]["protocol"]
        out[(scheme, swap)] = body
    win = out[("pairwise_winrate", True)]
    assert all(0 <= x <= 1 for x in win["rewards"])
    # each of the 12 judgments hands one point to its two sides
    comps = [c["comparisons"] for c in win["details"]["candidates"]]
    assert comps == [6] * 4 and sum(x * 6 for x in win["rewards"]) == pytest.approx(12)
    assert sum(out[("bradley_terry", True)]["rewards"]) == pytest.approx(0, abs=1e-6)
    # a group's point score is the one /v1/judge gives the same candidate alone
    for cand, reward in zip(cands, out[("pointwise", True)]["rewards"]):
        alone = httpx.post(
            endpoint["url"] + "/v1/judge",
            json=dict(task="image_generation", prompt=prompt, candidates=[cand]),
            headers={"authorization": f"Bearer {TOKEN}"},
            timeout=60,
        ).json()
        assert alone["score_norm"] == pytest.approx(reward, abs=1e-4)


@pytest.mark.slow
def test_invalid_members_get_null_and_the_rest_is_scored(endpoint, pools, tmp_path):
    prompt, paths = image_group(pools)
    good = [uri(p) for p in paths[:3]]
    truncated = to_data_uri(Path(paths[3]).read_bytes()[:60], "image/png")
    cands = [good[0], truncated, good[1], good[0], "/etc/passwd", good[2]]
    r = post(endpoint, dict(task="image_generation", prompt=prompt, candidates=cands))
    assert r.status_code == 200, r.text
    rewards, c = r.json()["rewards"], r.json()["details"]["candidates"]
    assert rewards[1] is None and rewards[4] is None
    assert "decode" in c[1]["reason"] or "truncated" in c[1]["reason"], c[1]
    assert "server paths are not accepted" in c[4]["reason"]
    assert c[3]["duplicate_of"] == 0 and rewards[3] == rewards[0]
    assert r.json()["details"]["judgments"] == 6  # the three distinct valid images, both orders
    assert all(rewards[k] is not None for k in (0, 2, 3, 5))
    # every candidate invalid: 400 with each reason
    r = post(endpoint, dict(task="image_generation", prompt=prompt, candidates=[truncated, "/etc/passwd"]))
    assert r.status_code == 400 and "no candidate of the group can be judged" in r.json()["error"]["message"]


@pytest.mark.slow
def test_understanding_answers_empty_and_duplicated(endpoint, pools):
    row = pools["image_understanding"][0]
    answers = [c["text"] for c in row["candidates"]]
    cands = [answers[0], "", answers[1], answers[0], "   "]
    body = dict(task="image_understanding", prompt=row["prompt"], context=uri(row["context"]), candidates=cands)
    r = post(endpoint, dict(body, scheme="pointwise"))
    assert r.status_code == 200, r.text
    rewards, c = r.json()["rewards"], r.json()["details"]["candidates"]
    assert rewards[1] is None and rewards[4] is None and c[1]["reason"] == "empty answer"
    assert rewards[3] == rewards[0] is not None and rewards[2] is not None
    r = post(endpoint, dict(body, context=None))
    assert r.status_code == 400 and "needs the image" in r.json()["error"]["message"]


@pytest.mark.slow
def test_limits_auth_and_errors(endpoint, pools, world, tmp_path):
    prompt, paths = image_group(pools)
    cands = [uri(p) for p in paths]
    base = dict(task="image_generation", prompt=prompt)
    r = post(endpoint, dict(base, candidates=cands + cands[:3]))  # 7 > max_group 6
    assert r.status_code == 400 and "at most 6 per group" in r.json()["error"]["message"]
    assert post(endpoint, dict(base, candidates=cands[:1])).status_code == 422
    r = post(endpoint, dict(base, prompt="x" * 32_001, candidates=cands[:2]))
    assert r.status_code == 422 and "prompt" in r.json()["error"]["message"]
    assert post(endpoint, dict(base, candidates=cands[:2], scheme="elo")).status_code == 422
    assert post(endpoint, dict(base, candidates=cands[:2]), token="wrong").status_code == 401
    # a video of 5 frames cannot sit in a pair item of at most 8 images: null, the others scored
    vrow = pools["video_generation"][0]
    videos = [[uri(p) for p in _frames(v["media"], 5, tmp_path)] for v in vrow["candidates"][:3]]
    small = [[uri(p) for p in _frames(v["media"], 3, tmp_path)] for v in vrow["candidates"][:2]]
    r = post(endpoint, dict(task="video_generation", prompt=vrow["prompt"], candidates=[videos[0], *small]))
    assert r.status_code == 200, r.text
    assert r.json()["rewards"][0] is None and "at most 8" in r.json()["details"]["candidates"][0]["reason"]
    assert r.json()["rewards"][1] is not None and r.json()["rewards"][2] is not None


def _frames(video_path: str, n: int, folder: Path) -> list[str]:
    """The first ``n`` frames of a video as PNG files under ``folder`` (never beside the video: the
    world is shared by the whole test session)."""
    out = folder / f"{Path(video_path).parent.name}-{Path(video_path).stem}.f{n}"
    out.mkdir(parents=True, exist_ok=True)
    files = []
    for k, f in enumerate(load_video(video_path).frames[:n]):
        files.append(str(out / f"{k}.png"))
        f.save(files[-1])
    return files


@pytest.mark.slow
def test_clients_rewards(endpoint, pools):
    prompt, paths = image_group(pools)
    with RewardClient(endpoint["url"], token=TOKEN) as c:
        res = c.rewards("image_generation", prompt, [paths[0], "/no/such.png", Image.open(paths[1]), paths[0]])
        assert res.rewards[1] is None and "not_found" in res.reasons[1]
        assert None not in (res.rewards[0], res.rewards[2], res.rewards[3]) and res.rewards[3] == res.rewards[0]
        assert res.details["candidates"][3]["duplicate_of"] == 0 and res.details["unsent"] == 1
        lone = c.rewards("image_generation", prompt, [paths[0], "/no/such.png"])
        assert lone.rewards == [None, None] and "fewer than two" in lone.reasons[0]

    async def run():
        async with AsyncRewardClient(endpoint["url"], token=TOKEN) as c:
            return await c.rewards("image_generation", prompt, paths, scheme="pointwise")

    res = asyncio.run(run())
    assert res.scheme == "pointwise" and len(res.rewards) == 4 and None not in res.rewards


@pytest.mark.slow
def test_metrics_count_groups(endpoint, pools):
    prompt, paths = image_group(pools)
    post(endpoint, dict(task="image_generation", prompt=prompt, candidates=[uri(p) for p in paths[:3]]))
    deadline, text = time.time() + 30, ""
    while time.time() < deadline:
        text = httpx.get(endpoint["metrics"]).text
        if "ray_unireward_group_latency_s" in text and "ray_unireward_group_size" in text:
            break
        time.sleep(1)
    assert "ray_unireward_group_size" in text and "ray_unireward_group_latency_s" in text
    assert 'route="rewards"' in text


# ------------------------------------------------------------------------------ TRL
def _conversation(question: str, image) -> list[dict]:
    """A prompt as GRPOTrainer hands it to reward functions: the image inserted as a part."""
    return [{"role": "user", "content": [{"type": "image", "image": image}, {"type": "text", "text": question}]}]


@pytest.mark.slow
def test_trl_reward_function_groups_by_prompt(endpoint, pools):
    from unireward.integrations.trl import RewardFunction

    rows = pools["image_understanding"][:2]
    prompts, completions, images = [], [], []
    for r in rows:
        for c in r["candidates"][:3]:  # three generations per prompt, consecutive as TRL makes them
            images.append(Image.open(r["context"]).convert("RGB"))  # a new PIL object per sample, as TRL decodes
            prompts.append(_conversation(r["prompt"], images[-1]))
            completions.append([{"role": "assistant", "content": c["text"]}])
    completions[4] = [{"role": "assistant", "content": " "}]
    fn = RewardFunction(endpoint["url"], "image_understanding", token=TOKEN, null_reward=0.0)
    assert fn.__name__ == "unireward"
    logged = {}
    out = fn(prompts=prompts, completions=completions, image=images, log_metric=lambda k, v: logged.update({k: v}))
    assert len(out) == 6 and out[4] == 0.0 and all(isinstance(x, float) for x in out)
    assert [g[0] for g in fn.groups(prompts, dict(image=images))] == [[0, 1, 2], [3, 4, 5]]
    assert [g[0] for g in fn.groups(prompts, {})] == [[0, 1, 2], [3, 4, 5]]  # the images in the prompts
    assert fn(prompts=prompts, completions=completions) == out
    assert fn.stats["groups"] == 4 and fn.stats["nulls"] == 2 and fn.null_reasons["empty answer"] == 2
    assert logged["unireward/null_fraction"] == pytest.approx(1 / 6)
    # generation policies: PIL images as completions, grouped by caption; a group over max_group is split
    prompt, paths = image_group(pools)
    imgs = [Image.open(p).convert("RGB") for p in paths]
    gen = RewardFunction(endpoint["url"], "image_generation", "pointwise", token=TOKEN)
    out = gen(prompts=[prompt] * 8, completions=imgs + imgs[::-1])
    assert [len(g[0]) for g in gen.groups([prompt] * 8, {})] == [4, 4]
    assert out[:4] == pytest.approx(out[4:][::-1]) and None not in out


@pytest.mark.slow
def test_trl_reward_function_deadline():
    from unireward.integrations.trl import RewardFunction

    dead = f"http://127.0.0.1:{free_port()}"
    fn = RewardFunction(dead, "image_generation", deadline_s=1.0)
    imgs = [Image.new("RGB", (8, 8), c) for c in ("red", "blue")]
    t = time.time()
    with pytest.raises(EndpointError, match="deadline"):
        fn(prompts=["a", "a"], completions=imgs)
    assert time.time() - t < 30
    lenient = RewardFunction(dead, "image_generation", deadline_s=1.0, on_error="null", null_reward=-1.0)
    assert lenient(prompts=["a", "a"], completions=imgs) == [-1.0, -1.0] and lenient.stats["failed_groups"] == 1


def groups_counted(endpoint, settled: bool = False) -> float:
    """The endpoint's count of pointwise groups (Prometheus); ``settled``: once two reads 2.5 s
    apart agree (the metrics are exported every second)."""

    def read():
        text = httpx.get(endpoint["metrics"]).text
        lines = [x for x in text.splitlines() if x.startswith("ray_unireward_group_size_count") and "pointwise" in x]
        return sum(float(x.rsplit(" ", 1)[1]) for x in lines)

    value = read()
    while settled:
        time.sleep(2.5)
        new = read()
        settled, value = new != value, new  # read again while it still changes
    return value


@pytest.mark.slow
def test_grpo_on_the_tiny_vlm_with_rewards_from_the_endpoint(endpoint, pools, world, tmp_path, tiny_judge_dir):
    """TRL's GRPOTrainer, the tiny Qwen2.5-VL as policy, image questions from the synthetic world,
    rewards from the live endpoint: rewards vary within groups, optimizer steps happen, the
    endpoint counts the group requests."""
    import torch
    from transformers import AutoModelForImageTextToText, AutoProcessor
    from trl import GRPOConfig, GRPOTrainer

    from unireward.integrations.trl import RewardFunction, grpo_dataset

    ds, skipped = grpo_dataset(world.pools["image_understanding"])
    assert len(ds) == len(pools["image_understanding"]) and not skipped and set(ds.column_names) == {"prompt", "image"}
    policy = AutoModelForImageTextToText.from_pretrained(tiny_judge_dir)
    counted = groups_counted(endpoint, settled=True)
    before = {k: v.detach().clone() for k, v in policy.named_parameters()}
    reward = RewardFunction(endpoint["url"], "image_understanding", "pointwise", token=TOKEN)
    seen: list[list[float]] = []

    def recorded(prompts, completions, **kw):
        out = reward(prompts=prompts, completions=completions, **kw)
        seen.append(out)
        return out

    recorded.__name__ = "unireward"
    args = GRPOConfig(
        output_dir=str(tmp_path / "grpo"),
        use_cpu=True,
        bf16=False,
        report_to=[],
        max_steps=2,
        per_device_train_batch_size=4,
        num_generations=4,
        max_completion_length=12,
        learning_rate=1e-3,
        logging_steps=1,
        save_strategy="no",
        seed=0,
        gradient_checkpointing=False,
    )
    trainer = GRPOTrainer(
        model=policy,
        reward_funcs=recorded,
        args=args,
        train_dataset=ds,
        processing_class=AutoProcessor.from_pretrained(tiny_judge_dir, padding_side="left"),
    )
    trainer.train()
    assert trainer.state.global_step == 2 and len(seen) == 2
    for batch in seen:  # one prompt's four samples per step
        assert len(batch) == 4 and None not in batch and max(batch) > min(batch), batch
    assert reward.stats["groups"] == 2
    changed = [k for k, v in policy.named_parameters() if not torch.equal(v.detach(), before[k])]
    assert changed, "no optimizer step changed the policy"
    logs = [h for h in trainer.state.log_history if "rewards/unireward/mean" in h]
    assert logs and all(h["reward_std"] > 0 for h in logs), logs
    deadline = time.time() + 30
    while groups_counted(endpoint) < counted + 2 and time.time() < deadline:
        time.sleep(1)
    assert groups_counted(endpoint) == counted + 2

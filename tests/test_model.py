"""RewardModel on tiny real checkpoints: the logit method against a brute-force reference computed
token by token, batching invariance, order, swap debiasing, invalid input, provenance."""

import dataclasses
import shutil

import pytest
import torch

from unireward.io.media import MediaLimits, load_media
from unireward.judge.model import RewardModel, _combine_swap
from unireward.judge.records import read_items
from unireward.judge.trie import build_trie
from unireward.judge.types import JudgeItem, Judgment, Mode, Status


def _items(world, task, mode=None, limit=None):
    items, rows = read_items(world.items[task])
    out = [it for it in items if mode is None or it.resolved_mode().value == mode]
    return out[:limit] if limit else out


def reference(rm: RewardModel, item: JudgeItem):
    """Brute force: for every answer, every next-token distribution it needs is computed by a full
    forward pass of batch 1 over prompt + answer prefix (no cache, no batching, no logits_to_keep);
    multi-dimension scores condition on the previous dimensions' most likely values."""
    proto = rm.protocols.get(rm.family, item.task, item.resolved_mode())
    kind = item.task if isinstance(item.task, str) else item.task.value
    kind = "video" if kind.startswith("video") else "image"
    srcs = item.candidates if proto.task.is_generation else [item.context]
    visuals = [load_media(s, kind, rm.media) for s in srcs]
    text = rm.processor.apply_chat_template(rm.messages(item, proto), add_generation_prompt=True, tokenize=False)
    if kind == "image":
        enc = rm.processor(text=[text], images=visuals, return_tensors="pt")
    else:
        enc = rm.processor(
            text=[text],
            videos=[v.frames for v in visuals],
            video_metadata=[v.metadata() for v in visuals],
            do_sample_frames=False,
            return_tensors="pt",
        )
    enc = dict(enc)
    tok = lambda s: list(rm.tokenizer(s, add_special_tokens=False)["input_ids"])  # noqa: E731

    def next_token_probs(prefix):
        row = dict(enc)
        suffix = torch.tensor([prefix], dtype=torch.long).reshape(1, -1)
        row["input_ids"] = torch.cat([enc["input_ids"], suffix], dim=1)
        row["attention_mask"] = torch.ones_like(row["input_ids"])
        for key in ("mm_token_type_ids", "token_type_ids"):
            if key in row:
                row[key] = torch.cat([enc[key], torch.zeros_like(suffix)], dim=1)
        with torch.inference_mode():
            logits = rm.model(**row).logits
        return logits[0, -1].float().softmax(-1)

    answer_sets = (
        [proto.verdict_options()] if proto.mode is Mode.PAIR_RANK else [proto.score_options(s) for s in proto.scales]
    )
    prefix: list[int] = []
    reads = []
    for opts in answer_sets:
        trie = build_trie({k: tok(v) for k, v in opts.items()})
        dist = {}
        for q in trie.queries:
            p = next_token_probs(prefix + list(q))
            dist[q] = {c: float(p[c]) for c in trie.children(q)}
        probs, mass = trie.combine(dist)
        reads.append((probs, mass))
        best = max(probs, key=probs.get)
        prefix = prefix + list(trie.options[best]) + tok("\n")
    return reads


@pytest.mark.parametrize(
    "task, mode",
    [
        ("image_generation", "pair_rank"),  # three verdicts, two query positions, one forward
        ("video_understanding", "pair_rank"),  # forced "Overall Judgment: " prefix, no tie
        ("image_generation", "point_score"),  # 1-5: single-token scores
        ("video_generation", "point_score"),  # 1-10: "1" may continue to "10"
        ("image_understanding", "point_score"),  # 0-100: several paths over the KV cache
        ("image_generation", "point_multi"),  # three dimensions, one after the other
    ],
)
def test_logits_equal_brute_force_reference(rm, world, task, mode):
    base_mode = "point_score" if mode == "point_multi" else mode
    items = _items(world, task, base_mode, limit=2)
    # a much longer prompt in the same batch: the others are left-padded
    items.append(
        dataclasses.replace(items[0], prompt=items[0].prompt + " Look closely at every detail." * 6, id="long")
    )
    if mode == "point_multi":
        items = [dataclasses.replace(it, mode=Mode.POINT_MULTI) for it in items]
    got = rm.judge(items, method="logits")
    for item, j in zip(items, got):
        assert j.status is Status.OK, j.reason
        ref = reference(rm, item)
        if mode == "pair_rank":
            ((probs, mass),) = ref
            assert j.probs == pytest.approx(probs, rel=1e-4, abs=1e-9)
            assert j.mass == pytest.approx(mass, rel=1e-3)
            assert j.verdict == max(probs, key=probs.get)
        elif mode == "point_score":
            ((probs, mass),) = ref
            assert j.distribution == pytest.approx(probs, rel=1e-4, abs=1e-9)
            assert j.score == pytest.approx(sum(float(k) * p for k, p in probs.items()), abs=1e-4)
            assert j.mass == pytest.approx(mass, rel=1e-3)
        else:
            expected = [sum(float(k) * p for k, p in probs.items()) for probs, _ in ref]
            assert list(j.dims.values()) == pytest.approx(expected, abs=1e-4)
            assert j.score == pytest.approx(sum(expected) / 3, abs=1e-4)


def test_pair_probabilities_by_hand(rm, world):
    """Independent of the trie code: P(first) = P("Image"|x) * P("1"|x, "Image ") etc."""
    item = _items(world, "image_generation", "pair_rank", limit=1)[0]
    j = rm.judge([item])[0]
    tok = lambda s: list(rm.tokenizer(s, add_special_tokens=False)["input_ids"])  # noqa: E731
    a, b, tie = tok("Image 1 is better"), tok("Image 2 is better"), tok("Both images are equally good")
    n = next(i for i in range(len(a)) if a[i] != b[i])  # first differing token
    assert a[:n] == b[:n] and tie[0] != a[0]
    proto = rm.protocols.get("qwen", "image_generation", "pair_rank")
    enc = rm.collate([rm.encode_item(item, proto, {})], [a[:n]])
    with torch.inference_mode():
        logits = rm.model(**enc).logits[0].float().softmax(-1)
    L = logits.shape[0]
    p_root, p_branch = logits[L - n - 1], logits[L - 1]
    raw = {"first": p_root[a[0]] * p_branch[a[n]], "second": p_root[a[0]] * p_branch[b[n]], "tie": p_root[tie[0]]}
    total = sum(float(v) for v in raw.values())
    assert j.probs == pytest.approx({k: float(v) / total for k, v in raw.items()}, abs=1e-5)


@pytest.mark.parametrize("method", ["logits", "generate"])
def test_batched_equals_one_by_one(tiny_judge_dir, world, method):
    # a small token budget forces several batches of different widths (left padding)
    rm_small = RewardModel(tiny_judge_dir, max_new_tokens=6, token_budget=600, max_batch_size=3)
    items = _items(world, "image_generation") + _items(world, "image_understanding")
    batched = rm_small.judge(items, method=method)
    single = [rm_small.judge([it], method=method)[0] for it in items]
    for a, b in zip(batched, single):
        assert a.item_id == b.item_id
        assert a.status == b.status
        if method == "generate":
            assert a.raw_text == b.raw_text
        elif a.probs is not None:
            assert a.probs == pytest.approx(b.probs, abs=1e-4)
        else:
            assert a.score == pytest.approx(b.score, abs=1e-3)


def test_results_in_input_order_with_invalid_items_interleaved(rm, world, tmp_path):
    good = _items(world, "image_generation", limit=3) + _items(world, "video_understanding", limit=2)
    missing = JudgeItem(
        "image_generation", "a red circle", [str(tmp_path / "nope.png"), good[0].candidates[0]], id="missing"
    )
    bad_task = JudgeItem("audio_generation", "x", ["a", "b"], id="bad-task")
    no_context = JudgeItem("image_understanding", "what?", ["a", "b"], id="no-context")
    garbage = tmp_path / "garbage.png"
    garbage.write_bytes(b"not an image at all")
    corrupt = JudgeItem("image_generation", "x", [str(garbage)], id="corrupt")
    items = [missing, good[0], bad_task, good[1], good[2], no_context, good[3], corrupt, good[4]]
    out = rm.judge(items, method="logits", swap=True)
    assert [j.item_id for j in out] == [it.id for it in items]
    assert out[0].status is Status.INVALID_INPUT and "not_found" in out[0].reason
    assert out[2].status is Status.INVALID_INPUT and "unknown task" in out[2].reason
    assert out[5].status is Status.INVALID_INPUT and "context" in out[5].reason
    assert out[7].status is Status.INVALID_INPUT and "decode_failed" in out[7].reason
    for k in (1, 3, 4, 6, 8):
        assert out[k].status is Status.OK
    # the good items are judged exactly as they would be alone
    alone = rm.judge([good[1]], method="logits", swap=True)[0]
    assert out[3].probs == pytest.approx(alone.probs, abs=1e-5)
    assert out[3].task == good[1].task and out[6].task == "video_understanding"


def test_swap_combines_both_orders(rm, world):
    item = _items(world, "image_understanding", "pair_rank", limit=1)[0]
    j = rm.judge([item], method="logits", swap=True)[0]
    ab = rm.judge([item])[0]
    ba = rm.judge([item.swapped()])[0]
    assert j.orders is not None and len(j.orders) == 2
    assert j.orders[0].probs == pytest.approx(ab.probs, abs=1e-5)
    assert j.orders[1].probs == pytest.approx(ba.probs, abs=1e-5)
    assert j.probs["first"] == pytest.approx((ab.probs["first"] + ba.probs["second"]) / 2, abs=1e-5)
    assert j.probs["second"] == pytest.approx((ab.probs["second"] + ba.probs["first"]) / 2, abs=1e-5)
    back = "first" if ba.verdict == "second" else "second"
    assert j.agreement == (ab.verdict == back)
    assert j.provenance["swap"] is True
    # points are not swapped
    point = _items(world, "image_understanding", "point_score", limit=1)[0]
    assert rm.judge([point], swap=True)[0].orders is None


def _j(verdict, status=Status.OK, reason=None):
    return Judgment(None, "image_generation", "pair_rank", "generate", status, reason=reason, verdict=verdict)


def test_swap_text_verdicts():
    agree = _combine_swap(_j("first"), _j("second"))
    assert (agree.verdict, agree.agreement, agree.status) == ("first", True, Status.OK)
    tie = _combine_swap(_j("tie"), _j("tie"))
    assert (tie.verdict, tie.agreement) == ("tie", True)
    biased = _combine_swap(_j("first"), _j("first"))  # position 1 wins both times: position bias
    assert (biased.verdict, biased.agreement) == ("tie", False)
    assert "disagree" in biased.reason
    half = _combine_swap(_j("first"), _j(None, Status.UNPARSED, "no verdict phrase found"))
    assert half.status is Status.UNPARSED and half.verdict is None
    assert "B,A" in half.reason and "no verdict phrase" in half.reason


def test_generate_keeps_raw_text_and_never_defaults(rm, world):
    items = _items(world, "image_generation", limit=3)
    for j in rm.judge(items, method="generate"):
        assert j.raw_text is not None
        assert j.provenance["decoding"]["max_new_tokens"] == 6
        if j.status is Status.UNPARSED:
            assert j.verdict is None and j.score is None and j.reason


def test_video_items_both_methods(rm, world):
    items = _items(world, "video_generation", limit=3) + _items(world, "video_understanding", limit=3)
    for method in ("logits", "generate"):
        out = rm.judge(items, method=method)
        assert all(j.status in (Status.OK, Status.UNPARSED) for j in out), [j.reason for j in out]


def test_provenance(rm, world):
    item = _items(world, "image_generation", "point_score", limit=1)[0]
    j = rm.judge([item])[0]
    p = j.provenance
    assert p["model"] == str(rm.model_path) and p["method"] == "logits"
    assert p["protocol"] == "qwen/image_generation/point_score" and len(p["protocol_digest"]) == 12
    assert p["unireward"] and p["transformers"] and p["dtype"] == "float32"


def test_protocol_override_and_llava_family(tiny_judge_dir, world, tmp_path):
    item = _items(world, "image_generation", "pair_rank", limit=1)[0]
    rm_llava = RewardModel(tiny_judge_dir, family="llava")
    j = rm_llava.judge([item])[0]
    assert j.status is Status.OK and j.provenance["protocol"] == "llava/image_generation/pair_rank"
    override = tmp_path / "p.yaml"
    override.write_text(
        "families:\n  qwen:\n    image_generation:\n      pair_rank:\n        template: 'Which fits [{prompt}] best?'\n"
        "        verdicts: {first: 'Image 1 is better', second: 'Image 2 is better'}\n"
    )
    rm_override = RewardModel(tiny_judge_dir, protocols=override)
    j2 = rm_override.judge([item])[0]
    assert set(j2.probs) == {"first", "second"}  # the override has no tie
    assert (
        j2.provenance["protocol_digest"] != rm_override.protocols.get("qwen", "image_generation", "point_score").digest
    )
    with pytest.raises(ValueError, match="unknown protocol family"):
        RewardModel(tiny_judge_dir, family="nope")


def test_checkpoint_without_chat_template_is_refused(tiny_judge_dir, tmp_path):
    bare = tmp_path / "bare"
    shutil.copytree(tiny_judge_dir, bare)
    for f in bare.glob("chat_template*"):
        f.unlink()
    for name in ("processor_config.json", "tokenizer_config.json"):
        p = bare / name
        if p.exists():
            import json

            cfg = json.loads(p.read_text())
            cfg.pop("chat_template", None)
            p.write_text(json.dumps(cfg))
    with pytest.raises(ValueError, match="chat template"):
        RewardModel(bare)


def test_media_limits_apply(tiny_judge_dir, world):
    item = _items(world, "image_generation", "point_score", limit=1)[0]
    small = RewardModel(tiny_judge_dir, media=MediaLimits(max_bytes=100))
    j = small.judge([item])[0]
    assert j.status is Status.INVALID_INPUT and "too_large" in j.reason


def test_unknown_method(rm):
    with pytest.raises(ValueError, match="method"):
        rm.judge([], method="vibes")


@pytest.mark.slow
@pytest.mark.parametrize("arch", ["qwen2_vl", "qwen3_vl"])
def test_other_architectures(arch, world, tmp_path):
    from unireward.models.tiny import build_tiny_judge

    path = build_tiny_judge(tmp_path / arch, arch=arch, size="nano")
    model = RewardModel(path, max_new_tokens=4)
    items = (
        _items(world, "image_generation", limit=2)
        + _items(world, "image_understanding", "point_score", limit=1)
        + _items(world, "video_generation", limit=2)
        + _items(world, "video_understanding", limit=1)
    )
    for method in ("logits", "generate"):
        out = model.judge(items, method=method, swap=True)
        assert all(j.status in (Status.OK, Status.UNPARSED) for j in out), [j.reason for j in out]
    # the cached multi-path reading (0-100 scale) and the one-forward pair reading agree with brute force
    for item in (items[0], items[2], items[4]):
        j = model.judge([item])[0]
        ((probs, _),) = reference(model, item)
        got = j.probs if j.probs is not None else j.distribution
        assert got == pytest.approx(probs, abs=1e-5)


def test_generate_reads_the_verdict_after_reasoning(rm, world, monkeypatch):
    """Generate-then-read: a pair whose output reasons first gets the verdict probabilities read
    after its reasoning, exactly as the logit method reads them after a prompt."""
    import torch

    item = _items(world, "image_generation", "pair_rank", limit=1)[0]
    reasoning = "<think>Image 1: two two yes; clean. Image 2: two one no; clean.</think>\n"
    said = rm._tokens(reasoning + "Image 2 is better.")
    real_generate = rm.model.generate

    def fake_generate(**inputs):
        n = inputs["input_ids"].shape[0]
        return torch.cat([inputs["input_ids"], torch.tensor([list(said)] * n)], dim=1)

    monkeypatch.setattr(rm.model, "generate", fake_generate)
    [j] = rm.judge([item], method="generate")
    monkeypatch.setattr(rm.model, "generate", real_generate)
    assert j.status is Status.OK and j.raw_text.startswith("<think>")
    assert set(j.probs) == {"first", "second", "tie"} and j.verdict == max(j.probs, key=j.probs.get)
    assert 0 < j.mass <= 1 + 1e-6
    # the same read by hand: prompt, reasoning, answer path
    protocol = rm.protocols.get(rm.family, item.task, item.resolved_mode())
    trie = rm._plan(protocol).tries[0]
    enc = rm.encode_item(item, protocol, {})
    inputs = rm.collate([enc], [list(rm._tokens(reasoning)) + list(trie.path)])
    with torch.no_grad():
        logp = rm.model(**inputs, use_cache=False).logits.float().log_softmax(-1)[0]
    n = logp.shape[0]
    probs, mass = rm._read(trie, lambda q: logp[n - 1 - (len(trie.path) - len(q))])
    assert probs == pytest.approx(j.probs, abs=1e-5) and mass == pytest.approx(j.mass, abs=1e-5)

"""A DPO step for a VLM policy, built from the shared pieces: the chat encoded as the judge encodes
it (images included), chosen and rejected answers as targets, summed response log-probs, the DPO
loss against a frozen reference. A few steps make the policy prefer the chosen answers."""

import copy

import pytest
import torch

from unireward.judge.model import RewardModel
from unireward.judge.protocols import chat_messages, default_registry
from unireward.judge.records import read_items
from unireward.judge.types import JudgeItem
from unireward.train import sft
from unireward.train.data import SFTExample
from unireward.train.losses import dpo, sequence_logps


@pytest.mark.parametrize("loss_type", ["sigmoid", "ipo", "hinge"])
def test_a_few_vlm_dpo_steps_prefer_the_chosen_answers(tiny_judge_dir, world, loss_type):
    torch.manual_seed(0)
    rm = RewardModel(tiny_judge_dir)
    contexts = list(dict.fromkeys(it.context for it in read_items(world.items["image_understanding"])[0]))[:2]
    items = [
        JudgeItem("image_understanding", q, ["x"], context=c)
        for q, c in zip(["How many circles?", "What colour is the square?"], contexts)
    ]
    answers = [("There are two circles.", "There are five circles."), ("It is red.", "It is green.")]
    protocol = default_registry().get(rm.family, "image_understanding", "point_score")

    def batch(which):
        exs = [
            SFTExample(chat_messages(it, protocol), [it.context], "image", a[which], it.task)
            for it, a in zip(items, answers)
        ]
        return sft.collate(rm, [sft.encode(rm, e) for e in exs])

    chosen, rejected = batch(0), batch(1)
    policy, ref = rm.model, copy.deepcopy(rm.model).requires_grad_(False).eval()

    def logps(model, b):
        inputs = {k: v for k, v in b.items() if k != "labels"}
        return sequence_logps(model(**inputs).logits, b["labels"])

    with torch.no_grad():
        ref_c, ref_r = logps(ref, chosen), logps(ref, rejected)
        before = dpo(logps(policy, chosen), logps(policy, rejected), ref_c, ref_r, beta=0.5, loss_type=loss_type)
    assert before.margin.abs().max().item() < 1e-4  # the policy starts as the reference
    opt = torch.optim.AdamW(policy.parameters(), lr=2e-3)
    policy.train()
    for _ in range(15):
        opt.zero_grad()
        out = dpo(logps(policy, chosen), logps(policy, rejected), ref_c, ref_r, beta=0.5, loss_type=loss_type)
        out.loss.backward()
        opt.step()
    policy.eval()
    with torch.no_grad():
        after = dpo(logps(policy, chosen), logps(policy, rejected), ref_c, ref_r, beta=0.5, loss_type=loss_type)
    assert after.loss.item() < before.loss.item()
    assert after.implicit_accuracy == 1.0


def test_answer_accuracy_scores_the_policys_most_likely_answer(tiny_judge_dir, tmp_path):
    """The demo's policy metric: the policy picks the answer it finds most likely; a policy taught the
    correct answers gets every question right, media failures are reported, not counted."""
    from unireward.synth.world import generate_world
    from unireward.train.vlm_dpo import answer_accuracy

    world = generate_world(str(tmp_path / "w"), n=3, seed=11, tasks=("image_understanding",), corrupt=1)
    before = answer_accuracy(str(tiny_judge_dir), world.items["image_understanding"], device="cpu")
    assert before["questions"] == 2 and before["chance"] == 0.25
    assert len(before["errors"]) == 1 and before["errors"][0]["reason"]
    # teach the correct answers, in the encoding the metric reads
    torch.manual_seed(0)
    rm = RewardModel(tiny_judge_dir, device="cpu")
    items, rows = read_items(world.items["image_understanding"])
    examples = []
    for it, r in zip(items, rows):
        if (
            r["mode"] == "point_score"
            and r["gt_scores"][0] == 1.0
            and it.context not in {e["context"] for e in before["errors"]}
        ):
            from unireward.io.media import load_image

            msgs = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": it.prompt}]}]
            examples.append(SFTExample(msgs, [load_image(it.context)], "image", it.candidates[0], it.task))
    batch = sft.collate(rm, [sft.encode(rm, e) for e in examples])
    opt = torch.optim.AdamW(rm.model.parameters(), lr=3e-3)
    rm.model.train()
    for _ in range(40):
        opt.zero_grad()
        sft.loss(rm.model, batch).backward()
        opt.step()
    rm.model.save_pretrained(tmp_path / "taught")
    rm.processor.save_pretrained(tmp_path / "taught")
    after = answer_accuracy(str(tmp_path / "taught"), world.items["image_understanding"], device="cpu")
    assert after["accuracy"] == 1.0 and after["questions"] == 2

"""Judge SFT on the tiny judge: the training input is the judging input plus the target, only the
target carries loss, and a few steps on two labelled pairs make the logit method read back the
trained verdicts (training and judging agree on the format, token for token)."""

import pytest
import torch

from unireward.judge.model import RewardModel
from unireward.judge.protocols import default_registry
from unireward.judge.records import read_items
from unireward.judge.types import Mode, Status
from unireward.train import sft
from unireward.train.data import from_preference

REG = default_registry()


@pytest.fixture
def pairs(world):
    items, rows = read_items(world.items["image_generation"])
    labelled = [
        (it, r["label"])
        for it, r in zip(items, rows)
        if it.resolved_mode() is Mode.PAIR_RANK and r["label"] in ("first", "second")
    ]
    first = next(p for p in labelled if p[1] == "first")
    # a pair of another caption: from random weights, a few steps can learn to tell captions apart;
    # telling apart two pairs that differ only in their images takes a trained vision tower
    second = next(p for p in labelled if p[1] == "second" and p[0].prompt != first[0].prompt)
    return [first, second]


def test_the_training_input_is_the_judging_input_plus_the_target(tiny_judge_dir, pairs):
    rm = RewardModel(tiny_judge_dir)
    item, label = pairs[0]
    protocol = REG.get(rm.family, item.task, "pair_rank")
    ex = from_preference(item, protocol, label)
    enc = sft.encode(rm, ex)
    judged = rm.encode_item(item, protocol, {})
    assert torch.equal(enc["input_ids"], judged["input_ids"])
    other, other_label = pairs[1]
    batch = sft.collate(rm, [enc, sft.encode(rm, from_preference(other, protocol, other_label))])
    for row in range(2):
        kept = batch["labels"][row][batch["labels"][row] != sft.IGNORE]
        text = rm.tokenizer.decode(kept)
        assert text.startswith(ex.target if row == 0 else "Image 2 is better") and text.rstrip().endswith("<|im_end|>")
        assert batch["attention_mask"][row, -len(kept) :].all()


def test_a_few_steps_teach_the_judge_its_verdicts(tiny_judge_dir, pairs):
    torch.manual_seed(0)
    rm = RewardModel(tiny_judge_dir)
    protocol = REG.get(rm.family, "image_generation", "pair_rank")
    batch = sft.collate(rm, [sft.encode(rm, from_preference(it, protocol, label)) for it, label in pairs])
    before = [j.verdict for j in rm.judge([it for it, _ in pairs], method="logits")]
    opt = torch.optim.AdamW(rm.model.parameters(), lr=3e-3)
    rm.model.train()
    losses = []
    for _ in range(100):
        opt.zero_grad()
        loss = sft.loss(rm.model, batch)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    rm.model.eval()
    assert losses[-1] < 0.2 * losses[0]
    after = rm.judge([it for it, _ in pairs], method="logits")
    assert all(j.status is Status.OK for j in after)
    assert [j.verdict for j in after] == [label for _, label in pairs], (before, [j.probs for j in after])
    assert all(j.probs[label] > 0.9 for j, (_, label) in zip(after, pairs))

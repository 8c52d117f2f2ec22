"""CPU probe: can a tiny transformer learn to compare, from scratch, with the judge's training code?

Three text-only yes/no tasks, no visuals, on the tiny judge (Qwen2.5-VL architecture, trained
through unireward.train.sft exactly as train_reward trains it):
  mention    "Description: <caption>. Is something red?"           first order: one word decides
  equal      "First: <colour>. Second: <colour>. Same?"            the simplest comparison (36 inputs)
  textmatch  "Caption: <caption>. Description: <near miss or same>. Same?"   what judging needs, as text
  equal+copy `equal`, with half of each training batch asking "Which was first/second?" instead
             (a pointer task: it teaches attention where to look); evaluated on `equal`
and a control that trains a plain GPT-2 of the same size on `equal` (no chat template, loss on the
answer only), to tell the model family apart from the task.

usage: python comparison_probe.py {judge|gpt2} TASK STEPS LR [SIZE]
prints one JSON line per 100 steps: held-out loss and accuracy on 128 examples.
"""

import json
import sys
import tempfile
import time

import numpy as np
import torch

from unireward.judge.model import RewardModel
from unireward.models.tiny import build_tiny_judge
from unireward.synth import world as W
from unireward.train import sft
from unireward.train.data import SFTExample

COLOURS = list(W.COLOURS)


def question(task: str, rng: np.random.Generator) -> tuple[str, bool | str]:
    """A question and its answer: True/False for yes/no, or the word to answer."""
    if task == "equal+copy":
        if rng.random() < 0.5:
            return question("equal", rng)
        a, b = (str(c) for c in rng.choice(COLOURS, size=2))
        second = bool(rng.random() < 0.5)
        return f"First: {a}\nSecond: {b}\nWhich was {'second' if second else 'first'}?", b if second else a
    if task == "mention":
        text = W.caption(W.random_scene(rng))
        return f"Description: {text}\nIs something red? Answer yes or no.", "red" in text
    yes = bool(rng.random() < 0.5)
    if task == "equal":
        a = str(rng.choice(COLOURS))
        b = a if yes else str(rng.choice([c for c in COLOURS if c != a]))
        return f"First: {a}\nSecond: {b}\nSame? Answer yes or no.", yes
    if task == "textmatch":
        scene = W.random_scene(rng)
        other = W.perturb(scene, 1, rng)[0]
        return (
            f"Caption: {W.caption(scene)}\nDescription: {W.caption(scene if yes else other)}\nSame? Answer yes or no.",
            yes,
        )
    raise ValueError(f"unknown task {task!r}")


def text_example(text: str, answer: bool | str, task: str = "probe") -> SFTExample:
    """A text-only question as the judge's SFT example: yes/no for a bool, else the word."""
    target = answer if isinstance(answer, str) else "yes" if answer else "no"
    return SFTExample([{"role": "user", "content": [{"type": "text", "text": text}]}], [], "image", target, task)


def yes_no_accuracy(rm: RewardModel, examples: list[SFTExample], batch_size: int = 16) -> float:
    """The share of yes/no examples whose answer token gets the right one of "yes" and "no"."""
    yes_id, no_id = rm.tokenizer.encode("yes")[0], rm.tokenizer.encode("no")[0]
    was_training = rm.model.training
    rm.model.eval()
    right = 0
    with torch.no_grad():
        for i in range(0, len(examples), batch_size):
            chunk = examples[i : i + batch_size]
            batch = sft.collate(rm, [sft.encode(rm, e) for e in chunk])
            logits = rm.model(**{k: v for k, v in batch.items() if k != "labels"}).logits
            first = (batch["labels"] != -100).float().argmax(1)  # the answer token's position
            at = logits[torch.arange(len(chunk)), first - 1]
            said = ["yes" if y > n else "no" for y, n in zip(at[:, yes_id].tolist(), at[:, no_id].tolist())]
            right += sum(s == e.target for s, e in zip(said, chunk))
    rm.model.train(was_training)
    return right / len(examples)


def main(arch: str, task: str, steps: int, lr: float, size: str = "small") -> None:
    torch.manual_seed(0)
    rm = RewardModel(build_tiny_judge(tempfile.mkdtemp(), size=size), device="cpu")
    tok = rm.tokenizer
    yes_id, no_id = tok.encode("yes")[0], tok.encode("no")[0]
    if arch == "judge":
        model = rm.model

        def forward(qs):  # the judge's own encoding: chat template, assistant target, sft.loss
            batch = sft.collate(rm, [sft.encode(rm, text_example(q, y, task)) for q, y in qs])
            logits = model(**{k: v for k, v in batch.items() if k != "labels"}).logits
            first = (batch["labels"] != -100).float().argmax(1)  # the answer token's position
            return logits[torch.arange(len(qs)), first - 1]
    elif arch == "gpt2":
        from transformers import GPT2Config, GPT2LMHeadModel

        cfg = rm.model.config.text_config
        model = GPT2LMHeadModel(
            GPT2Config(
                vocab_size=len(tok),
                n_embd=cfg.hidden_size,
                n_layer=cfg.num_hidden_layers,
                n_head=cfg.num_attention_heads,
                n_positions=256,
            )
        )

        def forward(qs):
            ids = [tok.encode(q) for q, _ in qs]
            width = max(map(len, ids))
            x = torch.zeros(len(ids), width, dtype=torch.long)
            mask = torch.zeros_like(x)
            for r, i in enumerate(ids):
                x[r, width - len(i) :], mask[r, width - len(i) :] = torch.tensor(i), 1
            pos = (mask.cumsum(1) - 1).clamp(min=0)
            return model(input_ids=x, attention_mask=mask, position_ids=pos).logits[:, -1]
    else:
        raise ValueError(f"unknown arch {arch!r}")

    def answer_id(y):
        return tok.encode(y)[0] if isinstance(y, str) else yes_id if y else no_id

    def loss_acc(qs):
        logits = forward(qs)
        target = torch.tensor([answer_id(y) for _, y in qs])
        said_yes = (logits[:, yes_id] > logits[:, no_id]).tolist()
        right = [s == y for s, (_, y) in zip(said_yes, qs) if isinstance(y, bool)]  # yes/no questions only
        return torch.nn.functional.cross_entropy(logits, target), float(np.mean(right)) if right else float("nan")

    rng, held_rng = np.random.default_rng(0), np.random.default_rng(123)
    held = [question(task.removesuffix("+copy"), held_rng) for _ in range(128)]
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.01)
    model.train()
    start = time.time()
    for step in range(1, steps + 1):
        loss, _ = loss_acc([question(task, rng) for _ in range(16)])
        opt.zero_grad()
        loss.backward()
        opt.step()
        if step % 100 == 0:
            model.eval()
            with torch.no_grad():
                held_loss, acc = loss_acc(held)
            model.train()
            print(
                json.dumps(
                    dict(
                        arch=arch,
                        task=task,
                        step=step,
                        held_loss=round(held_loss.item(), 4),
                        held_acc=round(acc, 3),
                        seconds=round(time.time() - start),
                    )
                ),
                flush=True,
            )


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4]), *sys.argv[5:6])

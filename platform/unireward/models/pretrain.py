"""Grounded pretraining of the tiny VLM: what a real judge's starting point (a pretrained VLM such
as Qwen2.5-VL-Instruct) already knows, taught to the tiny one on the synthetic world.

A randomly initialised tiny VLM cannot learn to judge from a few hundred preference pairs: it
first has to learn to see. This stage gives it generic vision-language skills on freshly rendered
scenes and motions, none of them a judging protocol:

- ``caption`` / ``video_caption``: describe an image (sometimes blurred or noisy) or a video;
- ``qa`` / ``video_qa``: answer a question about it (the correct answer);
- ``describe_k`` / ``video_describe_k``: two visuals, describe the k-th (grounding per visual);
- ``match`` / ``video_match``: does this caption match the visual? yes/no (image-text matching,
  as in BLIP-style pretraining; the wrong captions are near misses).

The judge protocols, verdict phrases and score scales are learnt afterwards by ``train_reward``,
on the project's preference data, as with a real base model. ``grounding`` measures whether the
model uses its visuals at all: the caption loss with each visual against the same captions with
the visuals shuffled (a blind model scores both the same).

Pure core: torch and transformers, no Ray. Examples are rendered on the fly in DataLoader workers,
so no two steps see the same picture.
"""

from __future__ import annotations

import contextlib
import json
import math
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..synth import world as W
from ..train.data import SFTExample

KINDS: dict[str, float] = {  # kind -> sampling weight
    "caption": 0.14,
    "qa": 0.14,
    "describe_k": 0.12,
    "match": 0.10,
    "video_caption": 0.14,
    "video_qa": 0.14,
    "video_describe_k": 0.12,
    "video_match": 0.10,
}
# Skills in the world's fixed slot order (see synth.world): a description slot by slot with its
# defects; a caption checked slot by slot against a visual (seen, claimed, yes/no), also against the
# k-th of two visuals; an answer's claim checked against the visual. Each step is generated or
# copied text, so each has a first-order training signal; a comparison is only ever of two words
# written side by side.
SLOT_KINDS: dict[str, float] = {
    "slots": 0.12,
    "check_k": 0.14,
    "check": 0.06,
    "answer_check": 0.10,
    "qa": 0.06,
    "video_slots": 0.10,
    "video_check_k": 0.12,
    "video_check": 0.05,
    "video_answer_check": 0.08,
    "video_qa": 0.05,
    "slots_k": 0.06,
    "video_slots_k": 0.06,
}
# Learning to see first: descriptions only (in slot order, and as captions) and answers. Mixed with the
# checks from the start, a small model copies the caption into every check and says "yes" for a
# long time without looking at the visual; on descriptions alone it starts to use its visuals sooner.
SEE_KINDS: dict[str, float] = {
    "slots": 0.35,
    "video_slots": 0.35,
    "caption": 0.1,
    "video_caption": 0.1,
    "qa": 0.05,
    "video_qa": 0.05,
}
ALL_KINDS = {**{k: 0.0 for k in KINDS}, **{k: 0.0 for k in SLOT_KINDS}}


def _chat(n: int, kind: str, text: str) -> list[dict[str, Any]]:
    return [{"role": "user", "content": [{"type": kind}] * n + [{"type": "text", "text": text}]}]


def _image(scene: list[W.Group], rng: np.random.Generator, p_degrade: float = 0.5) -> bytes:
    img = W.render_scene(scene)
    if rng.random() < p_degrade:
        img = W.degrade(img, int(rng.integers(1, len(W.QUALITY_LEVELS))), rng)
    return W.png(img)


def _video(m: W.Motion, rng: np.random.Generator, p_flicker: float = 0.5) -> bytes:
    flicker = float(rng.choice([0.15, 0.35])) if rng.random() < p_flicker else 0.0
    return W.mp4(W.render_motion(m, flicker, rng))


@dataclass(frozen=True)
class _Medium:
    """What the examples of one medium are made of: images of scenes, or videos of motions."""

    kind: str  # "image" or "video"
    sample: Callable[[np.random.Generator], Any]
    render: Callable[..., bytes]  # (subject, rng, p_degrade) -> encoded media
    describe: Callable[[Any], str]
    question: Callable[[Any, np.random.Generator, int], tuple]
    perturb: Callable[[Any, int, np.random.Generator], tuple]


_MEDIA = {
    "image": _Medium("image", W.random_scene, _image, W.caption, W.image_question, W.perturb),
    "video": _Medium("video", W.random_motion, _video, lambda m: m.caption(), W.video_question, W.perturb_motion),
}


def _defects(rng: np.random.Generator, video: bool, p: float = 0.3) -> dict[str, tuple[str | None, int]]:
    structure = "physics" if video else "coherence"
    out: dict[str, tuple[str | None, int]] = {}
    for axis in (structure, "style"):
        out[axis] = W._defect(rng, axis, video) if rng.random() < p else (None, 0)
    return out


def _defective(x: Any, video: bool, rng: np.random.Generator, p: float = 0.3) -> tuple[bytes, str]:
    """A visual of scene or motion ``x`` with random defects (each quality axis with probability
    ``p``) and the defects in words."""
    d = _defects(rng, video, p)
    if video:
        data = W.mp4(W.render_motion(x, 0.0, rng, physics=d["physics"], style=d["style"]))
    else:
        data = W.png(W.style_image(W.render_scene(x, coherence=d["coherence"], rng=rng), d["style"], rng))
    return data, W.defect_text(d)


def _slot_example(kind: str, task: str, video: bool, rng: np.random.Generator) -> SFTExample:
    md = "video" if video else "image"
    slots = (lambda y: W.motion_slots(y)) if video else W.scene_slots
    sample = W.random_motion if video else W.random_scene
    perturb = W.perturb_motion if video else W.perturb
    describe = (lambda y: y.caption()) if video else W.caption
    x = sample(rng)
    if task == "slots":
        data, words = _defective(x, video, rng)
        return SFTExample(
            _chat(1, md, f"Describe the {md} slot by slot."), [data], md, f"{W.slot_text(slots(x))}; {words}.", kind
        )
    if task == "slots_k":
        y = perturb(x, int(rng.integers(1, 3)), rng)[0]
        (dx, wx), (dy, wy) = _defective(x, video, rng), _defective(y, video, rng)
        k = int(rng.integers(2))
        pair, words = ([dx, dy], [wx, wy]) if rng.random() < 0.5 else ([dy, dx], [wy, wx])
        shown = [x, y] if pair[0] is dx else [y, x]
        return SFTExample(
            _chat(2, md, f"Describe {md} {k + 1} slot by slot."),
            pair,
            md,
            f"{W.slot_text(slots(shown[k]))}; {words[k]}.",
            kind,
        )
    if task in ("check", "check_k"):
        seen = perturb(x, int(rng.choice([0, 1, 1, 2, 3])), rng)[0]
        data, _ = _defective(seen, video, rng)
        target = W.slot_check(slots(seen), slots(x)) + "."
        if task == "check":
            text = f"Check the caption against the {md}, slot by slot.\nCaption: {describe(x)}"
            return SFTExample(_chat(1, md, text), [data], md, target, kind)
        other = perturb(x, int(rng.integers(0, 4)), rng)[0]
        odata, _ = _defective(other, video, rng)
        k = int(rng.integers(2))
        pair = [data, odata] if k == 0 else [odata, data]
        text = f"Check the caption against {md} {k + 1}, slot by slot.\nCaption: {describe(x)}"
        return SFTExample(_chat(2, md, text), pair, md, target, kind)
    # answer_check: an answer's claim against the visual
    q, answers, _ = (W.video_question if video else W.image_question)(x, rng, 4)
    seen_key = W.answer_key(next(a for a, v in answers if v == 1.0))
    answer = answers[int(rng.integers(len(answers)))][0]
    key = W.answer_key(answer)
    data = W.mp4(W.render_motion(x, 0.0, rng)) if video else W.png(W.render_scene(x))
    extra = ", extra" if W.has_extra_claim(answer) else ""
    text = f"Question: {q}\nAnswer: {answer}\nCheck the answer against the {md}."
    return SFTExample(
        _chat(1, md, text), [data], md, f"{seen_key} {key} {'yes' if key == seen_key else 'no'}{extra}.", kind
    )


def example(kind: str, rng: np.random.Generator) -> SFTExample:
    """One freshly rendered pretraining example of ``kind`` (media as encoded PNG/mp4 bytes, read
    back by the judge's own media loader)."""
    if kind not in ALL_KINDS:
        raise ValueError(f"unknown pretraining kind {kind!r}; expected one of {list(ALL_KINDS)}")
    task = kind.removeprefix("video_")
    if task in ("slots", "slots_k", "check", "check_k", "answer_check"):
        return _slot_example(kind, task, kind.startswith("video_"), rng)
    md = _MEDIA["video" if kind.startswith("video_") else "image"]
    x = md.sample(rng)
    if task == "caption":
        return SFTExample(
            _chat(1, md.kind, f"Describe the {md.kind}."), [md.render(x, rng)], md.kind, md.describe(x), kind
        )
    if task == "qa":
        q, answers, _ = md.question(x, rng, 4)
        best = next(a for a, v in answers if v == 1.0)
        return SFTExample(_chat(1, md.kind, q), [md.render(x, rng, 0.3)], md.kind, best, kind)
    other = md.perturb(x, int(rng.integers(1, 3)), rng)[0]
    if task == "describe_k":
        pair = [x, other] if rng.random() < 0.5 else [other, x]
        k = int(rng.integers(2))
        return SFTExample(
            _chat(2, md.kind, f"Describe {md.kind} {k + 1}."),
            [md.render(y, rng) for y in pair],
            md.kind,
            md.describe(pair[k]),
            kind,
        )
    yes = rng.random() < 0.5  # match
    text = f"Does this caption match the {md.kind}? Answer yes or no.\nCaption: {md.describe(x if yes else other)}"
    return SFTExample(_chat(1, md.kind, text), [md.render(x, rng)], md.kind, "yes" if yes else "no", kind)


@dataclass
class PretrainConfig:
    steps: int = 3000
    batch_size: int = 32
    lr: float = 2e-3
    warmup_steps: int = 100
    min_lr_ratio: float = 0.1
    weight_decay: float = 0.01
    kinds: dict[str, float] = field(default_factory=lambda: dict(KINDS))
    eval_every: int = 250
    eval_examples: int = 32  # per kind
    workers: int = 0  # DataLoader worker processes rendering examples (0: in the training process)
    max_seconds: float | None = None  # stop early (and save) after this long
    stop_at: int | None = None  # stop (and save) after this many steps, the schedule still set by ``steps``
    seed: int = 0

    def __post_init__(self):
        for name in ("steps", "batch_size", "eval_every", "eval_examples"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        unknown = set(self.kinds) - set(ALL_KINDS)
        if unknown or not self.kinds or any(w <= 0 for w in self.kinds.values()):
            raise ValueError(f"kinds must map some of {list(ALL_KINDS)} to positive weights, got {self.kinds}")


class _Stream:
    """An endless iterable of collated CPU batches, rendered and encoded with a CPU copy of the
    judge's processor (one per DataLoader worker)."""

    def __init__(self, model_dir: str, cfg: PretrainConfig):
        self.model_dir, self.cfg = model_dir, cfg

    def __iter__(self) -> Iterator[dict[str, Any]]:
        import torch

        from ..judge.model import RewardModel
        from ..train import sft

        info = torch.utils.data.get_worker_info()
        wid = info.id if info is not None else 0
        rm = RewardModel(self.model_dir, device="cpu", dtype="float32")  # tiny: only its processor is used
        rng = np.random.default_rng([self.cfg.seed, 17, wid])
        kinds, weights = list(self.cfg.kinds), np.array(list(self.cfg.kinds.values()), dtype=float)
        weights /= weights.sum()
        while True:
            picked = rng.choice(len(kinds), size=self.cfg.batch_size, p=weights)
            encs = [sft.encode(rm, example(kinds[int(k)], rng)) for k in picked]
            yield sft.collate(rm, encs)


def held_out(rm, cfg: PretrainConfig) -> dict[str, list[dict[str, Any]]]:
    """Fixed held-out examples per kind, plus caption sets with matched and shuffled visuals."""
    from ..train import sft

    rng = np.random.default_rng([cfg.seed, 999])
    out = {k: [sft.encode(rm, example(k, rng)) for _ in range(cfg.eval_examples)] for k in cfg.kinds}
    for kind in ("caption", "video_caption"):
        exs = [example(kind, rng) for _ in range(cfg.eval_examples)]
        shuffled = [
            SFTExample(e.messages, exs[(i + 1) % len(exs)].media, e.media_kind, e.target, e.task)
            for i, e in enumerate(exs)
        ]
        out[f"{kind}/matched"] = [sft.encode(rm, e) for e in exs]
        out[f"{kind}/shuffled"] = [sft.encode(rm, e) for e in shuffled]
    return out


def evaluate(rm, held: dict[str, list[dict[str, Any]]], batch_size: int = 16) -> dict[str, float]:
    """Held-out target loss per kind, and the grounding gap: caption loss with shuffled visuals
    minus with the right ones (0 for a model that ignores its visuals)."""
    import torch

    from ..train import sft

    was = rm.model.training
    rm.model.eval()
    out: dict[str, float] = {}
    with torch.no_grad():
        for name, encs in held.items():
            losses, right, total = [], 0, 0
            for i in range(0, len(encs), batch_size):
                chunk = encs[i : i + batch_size]
                batch = sft.collate(rm, chunk)
                logits = rm.model(**{k: v for k, v in batch.items() if k != "labels"}).logits[:, :-1]
                labels = batch["labels"][:, 1:]
                mask = labels != sft.IGNORE
                losses.append(float(torch.nn.functional.cross_entropy(logits[mask].float(), labels[mask])) * len(chunk))
                right += int((logits.argmax(-1)[mask] == labels[mask]).sum())
                total += int(mask.sum())
            out[f"loss/{name}"] = round(sum(losses) / len(encs), 4)
            out[f"token_acc/{name}"] = round(right / max(total, 1), 4)
    for kind in ("caption", "video_caption"):
        if f"loss/{kind}/matched" in out:
            out[f"grounding/{kind}"] = round(out[f"loss/{kind}/shuffled"] - out[f"loss/{kind}/matched"], 4)
    rm.model.train(was)
    return out


def pretrain(
    model_dir: str | Path,
    out: str | Path,
    cfg: PretrainConfig = PretrainConfig(),
    device: str | None = None,
    log: Callable[[dict[str, Any]], None] | None = None,
) -> dict[str, Any]:
    """Pretrains the tiny VLM at ``model_dir`` and saves it (HF folder, same processor) to ``out``.
    Returns the final held-out metrics and timing; ``log`` gets one dict per log step."""
    import torch

    from ..judge.model import RewardModel
    from ..train import sft

    torch.manual_seed(cfg.seed)
    rm = RewardModel(str(model_dir), device=device, dtype="float32")
    rm.model.train()
    dev = rm.device
    held = held_out(rm, cfg)
    stream = _Stream(str(model_dir), cfg)

    class _Dataset(torch.utils.data.IterableDataset):
        def __iter__(self):
            return iter(stream)

    loader = torch.utils.data.DataLoader(
        _Dataset(),
        batch_size=None,
        num_workers=cfg.workers,
        prefetch_factor=4 if cfg.workers else None,
        persistent_workers=bool(cfg.workers),
    )
    decay = [p for n, p in rm.model.named_parameters() if p.ndim >= 2 and "embed" not in n]
    other = [p for n, p in rm.model.named_parameters() if not (p.ndim >= 2 and "embed" not in n)]
    opt = torch.optim.AdamW(
        [dict(params=decay, weight_decay=cfg.weight_decay), dict(params=other, weight_decay=0.0)],
        lr=cfg.lr,
        betas=(0.9, 0.98),
    )

    def lr_at(step: int) -> float:
        if step < cfg.warmup_steps:
            return cfg.lr * (step + 1) / cfg.warmup_steps
        frac = (step - cfg.warmup_steps) / max(1, cfg.steps - cfg.warmup_steps)
        return cfg.lr * (cfg.min_lr_ratio + (1 - cfg.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * frac)))

    autocast = torch.autocast("cuda", dtype=torch.bfloat16) if dev.type == "cuda" else contextlib.nullcontext()
    history: list[dict[str, Any]] = []
    first = evaluate(rm, held)
    history.append(dict(step=0, **first))
    if log:
        log(history[-1])
    t0, c0, running, wait = time.time(), time.process_time(), [], 0.0
    it = iter(loader)
    for step in range(cfg.steps):
        tw = time.time()
        batch = {k: (v.to(dev, non_blocking=True) if hasattr(v, "to") else v) for k, v in next(it).items()}
        wait += time.time() - tw
        for g in opt.param_groups:
            g["lr"] = lr_at(step)
        with autocast:
            loss = sft.loss(rm.model, batch)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(rm.model.parameters(), 1.0)
        opt.step()
        running.append(loss.item())
        out_of_time = (cfg.max_seconds is not None and time.time() - t0 > cfg.max_seconds) or (
            cfg.stop_at is not None and step + 1 >= cfg.stop_at
        )
        last = step + 1 == cfg.steps or out_of_time
        if (step + 1) % cfg.eval_every == 0 or last:
            rec = dict(
                step=step + 1,
                train_loss=round(float(np.mean(running)), 4),
                lr=lr_at(step),
                elapsed_s=round(time.time() - t0, 1),
                cpu_s=round(time.process_time() - c0, 1),
                data_wait_s=round(wait, 1),
                **evaluate(rm, held),
            )
            running = []
            history.append(rec)
            if log:
                log(rec)
            if not last:  # an interrupted run keeps its last evaluated weights
                _save(rm, model_dir, out, cfg, dev, history, time.time() - t0, done=False)
        if out_of_time:
            break
    return _save(rm, model_dir, out, cfg, dev, history, time.time() - t0, done=True)


def _save(
    rm, model_dir, out, cfg: PretrainConfig, dev, history: list[dict[str, Any]], seconds: float, done: bool
) -> dict[str, Any]:
    was = rm.model.training
    rm.model.eval()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    rm.model.save_pretrained(out)
    rm.processor.save_pretrained(out)
    rm.model.train(was)
    card = (
        json.loads((Path(model_dir) / "unireward_tiny.json").read_text())
        if (Path(model_dir) / "unireward_tiny.json").exists()
        else {}
    )
    earlier = card.get("earlier_stages", []) + ([card["pretrained"]] if "pretrained" in card else [])
    summary = dict(
        kind="judge",
        pretrained=dict(
            asdict(cfg), device=str(dev), seconds=round(seconds, 1), finished=done, final=history[-1], start=history[0]
        ),
        **{k: v for k, v in card.items() if k not in ("kind", "pretrained", "earlier_stages")},
    )
    if earlier:  # a base pretrained in stages keeps every stage's record, oldest first
        summary["earlier_stages"] = earlier
    (out / "unireward_tiny.json").write_text(json.dumps(summary, indent=2))
    (out / "pretrain_history.jsonl").write_text("".join(json.dumps(h) + "\n" for h in history))
    return summary

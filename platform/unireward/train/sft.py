"""Supervised fine-tuning of the judge, the part every worker runs: an SFT example is encoded
exactly as the judge encodes its input (``RewardModel.encode_chat``), the assistant's target is
appended as the checkpoint's chat template writes it, and only the target's tokens carry loss.

Batches are left-padded like the judge's, so each row's target is its last tokens.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ..judge.model import RewardModel
from .data import DataError, SFTExample

IGNORE = -100


def target_ids(rm: RewardModel, example: SFTExample) -> list[int]:
    """The assistant turn's tokens as the chat template writes them after the generation prompt
    (the target, then the end-of-turn marker)."""
    tmpl = rm.processor.apply_chat_template
    prompt = tmpl(example.messages, add_generation_prompt=True, tokenize=False)
    full = tmpl(example.conversation(), tokenize=False)
    if not full.startswith(prompt):
        raise DataError("the chat template does not write the assistant turn after its generation prompt")
    ids = rm.tokenizer(full[len(prompt) :], add_special_tokens=False)["input_ids"]
    if not ids:
        raise DataError("empty target")
    return list(ids)


def encode(rm: RewardModel, example: SFTExample, media_cache: dict | None = None) -> dict[str, Any]:
    """Processor inputs of the prompt, plus ``target_ids``. Media errors raise (the caller records
    them as error rows; they are not silently dropped)."""
    enc = rm.encode_chat(example.messages, example.media_kind, example.media, media_cache)
    enc["target_ids"] = target_ids(rm, example)
    return enc


def collate(rm: RewardModel, encs: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """A left-padded training batch with ``labels``: -100 everywhere but each row's target."""
    import torch

    targets = [e["target_ids"] for e in encs]
    batch = rm.collate([{k: v for k, v in e.items() if k != "target_ids"} for e in encs], suffixes=targets)
    labels = torch.full_like(batch["input_ids"], IGNORE)
    for i, t in enumerate(targets):
        labels[i, -len(t) :] = torch.tensor(t, dtype=labels.dtype)
    batch["labels"] = labels.to(batch["input_ids"].device)
    return batch


def loss(model: Any, batch: dict[str, Any]):
    """Mean next-token cross-entropy over the target tokens."""
    import torch.nn.functional as F

    inputs = {k: v for k, v in batch.items() if k != "labels"}
    logits = model(**inputs).logits[:, :-1].float()
    labels = batch["labels"][:, 1:]
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), labels.reshape(-1), ignore_index=IGNORE)

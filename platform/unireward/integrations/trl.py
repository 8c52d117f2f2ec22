"""A reward function for TRL's ``GRPOTrainer`` (and any trainer that calls
``f(prompts=..., completions=..., **dataset_columns)`` and expects one float or None per
completion), backed by the endpoint's group rewards.

TRL generates a prompt's samples together (consecutively), so consecutive completions with the same
question and context form one group, scored in one ``/v1/rewards`` request. A completion the judge
gives no reward (an empty answer, an unreadable image, a refused group) gets ``null_reward`` (None
by default: GRPOTrainer then leaves it out of the group's mean and gives it no advantage) and is
counted in ``stats``.

    from trl import GRPOTrainer
    from unireward.integrations.trl import RewardFunction

    reward = RewardFunction("http://reward-host:8000", task="image_understanding", scheme="pairwise_winrate")
    GRPOTrainer(model=..., reward_funcs=reward, train_dataset=ds_with_prompt_and_image_columns, ...)
"""

from __future__ import annotations

import hashlib
import logging
import os
import time
from collections import Counter
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from PIL import Image

from ..judge.group import SCHEMES
from ..judge.types import Task
from ..serve.client import EndpointError, GroupRewards, RewardClient

log = logging.getLogger(__name__)
REFUSED = {400, 413, 422}  # the group itself was refused: retrying cannot help


def text_of(message: Any) -> str:
    """The text of a completion or prompt: a string, or chat messages (the last one's text parts)."""
    if isinstance(message, str):
        return message
    if isinstance(message, dict):
        message = [message]
    if isinstance(message, (list, tuple)) and message and isinstance(message[-1], dict):
        content = message[-1].get("content", "")
        if isinstance(content, str):
            return content
        return "".join(p.get("text") or "" for p in content if isinstance(p, dict) and p.get("type") == "text")
    raise TypeError(f"cannot read text from a {type(message).__name__}")


def question_of(prompt: Any) -> str:
    """The question in a prompt: the string itself, or the text of the last user message."""
    if isinstance(prompt, str):
        return prompt
    users = [m for m in prompt if isinstance(m, dict) and m.get("role") == "user"]
    return text_of(users[-1:] or prompt).strip()


def images_in(prompt: Any) -> list[Any]:
    """Images embedded in a conversational prompt's parts (as TRL inserts them for VLMs)."""
    if isinstance(prompt, str):
        return []
    found = []
    for m in prompt:
        content = m.get("content") if isinstance(m, dict) else None
        if isinstance(content, list):
            found += [p.get("image") for p in content if isinstance(p, dict) and p.get("image") is not None]
    return found


def fingerprint(x: Any) -> Any:
    """A hashable identity of a context (images by content: TRL decodes each row anew)."""
    if x is None:
        return None
    if isinstance(x, Image.Image):
        return ("image", x.size, x.mode, hashlib.sha1(x.tobytes()).hexdigest())
    if isinstance(x, (bytes, bytearray)):
        return ("bytes", hashlib.sha1(x).hexdigest())
    if isinstance(x, (list, tuple)):
        return tuple(fingerprint(f) for f in x)
    if isinstance(x, (str, os.PathLike)):
        return ("ref", os.fspath(x))
    return ("object", id(x))


class RewardFunction:
    """Rewards from ``/v1/rewards`` for a trainer's completions, grouped by prompt.

    ``task``: what the policy produces: answers about an image or video (``image_understanding``,
    ``video_understanding``: completions are texts, the context comes from the dataset's ``image``
    or ``images`` column or the prompt's image parts) or visuals (``image_generation``,
    ``video_generation``, ``image_editing``: completions are PIL images, frame lists or paths).
    ``question_column``: a dataset column with the question or caption, instead of the prompt's text.
    ``answer``: a function applied to each completion's text before judging (e.g. to cut a think block).
    ``deadline_s``: each group's request, retries included, gives up after this long; then
    ``on_error`` says what happens: ``raise`` (default: a dead endpoint stops training loudly) or
    ``null`` (those completions get ``null_reward``). A refused group (HTTP 400, e.g. every answer
    empty) always gets ``null_reward``, with the reason counted."""

    def __init__(
        self,
        endpoint: str,
        task: str | Task = "image_understanding",
        scheme: str = "pairwise_winrate",
        *,
        token: str | None = None,
        swap: bool = True,
        method: str = "logits",
        null_reward: float | None = None,
        deadline_s: float = 300.0,
        timeout_s: float | None = None,
        on_error: str = "raise",
        max_concurrency: int = 4,
        question_column: str | None = None,
        context_column: str | None = None,
        answer: Callable[[str], str] | None = None,
        name: str = "unireward",
        client: RewardClient | None = None,
    ):
        if scheme not in SCHEMES:
            raise ValueError(f"scheme must be one of {SCHEMES}, got {scheme!r}")
        if on_error not in ("raise", "null"):
            raise ValueError("on_error must be 'raise' or 'null'")
        self.task = Task(task)
        self.scheme, self.swap, self.method = scheme, swap, method
        self.null_reward, self.deadline_s, self.timeout_s, self.on_error = null_reward, deadline_s, timeout_s, on_error
        self.question_column, self.context_column, self.answer = question_column, context_column, answer
        self.max_concurrency = max_concurrency
        self.client = client or RewardClient(
            endpoint, token=token or os.environ.get("UNIREWARD_API_TOKEN"), max_concurrency=max_concurrency
        )
        self.__name__ = name  # TRL logs rewards/<name>/mean
        self._max_group: int | None = None
        self.stats: Counter = Counter()
        self.null_reasons: Counter = Counter()

    # ------------------------------------------------------------------------- what is sent
    def _candidate(self, completion: Any) -> Any:
        if self.task.is_generation:
            return completion
        text = text_of(completion)
        return self.answer(text) if self.answer else text

    def _context(self, prompt: Any, columns: dict[str, Any], k: int) -> Any:
        if not self.task.has_context:
            return None
        names = [self.context_column] if self.context_column else ["image", "images", "video"]
        for name in names:
            values = columns.get(name)
            if values is None:
                continue
            value = values[k]
            if name == "images" and isinstance(value, (list, tuple)):
                if len(value) != 1:
                    raise ValueError(f"sample {k}: {len(value)} images; the judge reads one context per prompt")
                value = value[0]
            return value
        found = images_in(prompt)
        if len(found) == 1:
            return found[0]
        raise ValueError(
            f"{self.task.value} needs the image or video each question is about: an 'image' column, a "
            "one-image 'images' column, context_column=..., or one image in the prompt"
        )

    def _question(self, prompt: Any, columns: dict[str, Any], k: int) -> str:
        if self.question_column:
            return str(columns[self.question_column][k])
        return question_of(prompt)

    def groups(self, prompts: Sequence[Any], columns: dict[str, Any]) -> list[tuple[list[int], str, Any]]:
        """(sample indices, question, context) of each group: runs of consecutive samples with the
        same question and context, split to the endpoint's max_group."""
        runs: list[tuple[list[int], str, Any, Any]] = []
        for k, prompt in enumerate(prompts):
            q, ctx = self._question(prompt, columns, k), self._context(prompt, columns, k)
            key = (q, fingerprint(ctx))
            if runs and runs[-1][3] == key:
                runs[-1][0].append(k)
            else:
                runs.append(([k], q, ctx, key))
        limit = self.max_group()
        out = []
        for idx, q, ctx, _ in runs:
            parts = -(-len(idx) // limit)
            size = -(-len(idx) // parts)
            out += [(idx[i : i + size], q, ctx) for i in range(0, len(idx), size)]
        return out

    def max_group(self) -> int:
        if self._max_group is None:
            try:
                limits = self.client._http.get("/readyz").json().get("limits") or {}
                self._max_group = int(limits.get("max_group") or 32)
            except Exception:
                self._max_group = 32
        return self._max_group

    # ------------------------------------------------------------------------- the call
    def _score(self, group: tuple[list[int], str, Any], candidates: list[Any]) -> list[tuple[float | None, str | None]]:
        idx, question, context = group
        if len(idx) < 2:
            return [(None, "a group of one sample: nothing to compare it with")]
        try:
            res: GroupRewards = self.client.rewards(
                self.task,
                question,
                [candidates[k] for k in idx],
                scheme=self.scheme,
                context=context,
                swap=self.swap,
                method=self.method,
                timeout_s=self.timeout_s,
                deadline_s=self.deadline_s,
            )
        except EndpointError as e:
            if e.status in REFUSED or self.on_error == "null":
                self.stats["failed_groups"] += 1
                return [(None, f"group refused: {e.message}" if e.status in REFUSED else str(e))] * len(idx)
            raise
        return list(zip(res.rewards, res.reasons))

    def __call__(self, prompts: Sequence[Any], completions: Sequence[Any], **columns: Any) -> list[float | None]:
        t0 = time.perf_counter()
        if len(prompts) != len(completions):
            raise ValueError(f"{len(prompts)} prompts and {len(completions)} completions")
        candidates = [self._candidate(c) for c in completions]
        groups = self.groups(prompts, columns)
        with ThreadPoolExecutor(max_workers=self.max_concurrency) as pool:
            scored = list(pool.map(lambda g: self._score(g, candidates), groups))
        out: list[float | None] = [None] * len(completions)
        nulls = 0
        for (idx, _, _), results in zip(groups, scored):
            for k, (reward, reason) in zip(idx, results):
                if reward is None:
                    nulls += 1
                    self.null_reasons[_reason_kind(reason)] += 1
                    reward = self.null_reward
                out[k] = reward
        self.stats.update(calls=1, groups=len(groups), samples=len(completions), nulls=nulls)
        log_metric = columns.get("log_metric")
        if callable(log_metric):
            log_metric(f"{self.__name__}/null_fraction", nulls / max(len(completions), 1))
            log_metric(f"{self.__name__}/seconds", time.perf_counter() - t0)
        if nulls:
            log.info("%d of %d completions got no reward: %s", nulls, len(completions), dict(self.null_reasons))
        return out

    def close(self) -> None:
        self.client.close()


def grpo_dataset(pool: str, limit: int | None = None):
    """A GRPO prompt dataset (``datasets.Dataset``) from a candidate pool's prompts: a conversational
    ``prompt`` column and, for understanding and editing tasks, the decoded ``image`` column that
    GRPOTrainer and ``RewardFunction`` read. Rows whose image cannot be read are left out and
    counted in the returned dict of skipped reasons."""
    from datasets import Dataset

    from ..io import media as media_io
    from ..io import schema
    from ..judge.records import resolve_row

    rows = [resolve_row(r, schema.parent(pool)) for r in schema.read_parquet(pool)]
    prompts, images, skipped = [], [], Counter()
    for r in rows[:limit] if limit else rows:
        task = Task(r["task"])
        if task.media_kind != "image" and task.has_context:
            raise ValueError(f"{pool}: {task.value} prompts need a video column; GRPO datasets here hold images")
        if task.has_context:
            try:
                images.append(media_io.load_image(r["context"]))
            except media_io.MediaError as e:
                skipped[e.code] += 1
                continue
        prompts.append([{"role": "user", "content": r["prompt"]}])
    columns: dict[str, list] = {"prompt": prompts}
    if images:
        columns["image"] = images
    return Dataset.from_dict(columns), dict(skipped)


def _reason_kind(reason: str | None) -> str:
    """A short class of a null reward's reason, for counting."""
    if not reason:
        return "unknown"
    head = reason.split(":", 1)[0].strip()
    return head if len(head) <= 40 else head[:40]

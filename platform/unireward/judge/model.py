"""RewardModel: a VLM judge loaded from any HF checkpoint folder whose processor has a chat
template (Qwen2-VL, Qwen2.5-VL, Qwen3-VL, ...), judging items of all four tasks.

Two methods:
- ``generate``: batched greedy generation (left padding, token-budget batches sorted by length),
  then the forgiving parser of ``parsing.py``; the raw text is kept.
- ``logits``: no generation. The answer prefix is forced and the verdict or score is read from
  next-token probabilities (see ``trie.py``): for a pair, P(first), P(second) [, P(tie)] from one
  forward pass that keeps only the last few positions' logits; for a point, the expected score
  over the scale. Multi-dimension scores are read one dimension after the other over a KV cache,
  each conditioned on the previous dimensions' most likely values.

``swap=True`` judges each pair in both orders and combines them (mean probabilities; for text
verdicts, disagreeing orders become a tie, flagged ``agreement=False``).
"""

from __future__ import annotations

import dataclasses
import inspect
import logging
import os
from collections import defaultdict
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from .. import __version__
from ..io.media import MediaError, MediaLimits, Video, load_media
from .batching import plan_batches
from .parsing import parse
from .protocols import Protocol, ProtocolRegistry, chat_messages, default_registry
from .reuse import ImageFeatureCache, deduplicate_vision
from .trie import AnswerTrie, build_trie
from .types import JudgeItem, Judgment, Mode, Status, Task, swap_verdict
from .vision import batch_vision_attention

log = logging.getLogger(__name__)
METHODS = ("logits", "generate")
_PER_TOKEN_FILL = {"input_ids": None, "attention_mask": 0, "mm_token_type_ids": 0, "token_type_ids": 0}


@dataclass
class _Request:
    index: int  # position of the item in the judge() call
    order: int  # 0: candidates as given; 1: swapped
    protocol: Protocol
    enc: dict[str, Any]  # processor output for this one sequence (batch dimension 1)

    @property
    def length(self) -> int:
        return int(self.enc["input_ids"].shape[1])


@dataclass
class _Plan:
    """How the logit method reads one protocol's answer."""

    tries: list[AnswerTrie]  # one (pair / point_score) or one per dimension (point_multi)
    connector: tuple[int, ...] = ()  # point_multi: tokens between one dimension's line and the next
    values: list[dict[str, float]] = field(default_factory=list)  # per trie: answer label -> numeric value

    @property
    def one_pass(self) -> bool:
        return len(self.tries) == 1 and self.tries[0].single_path


class RewardModel:
    """A multimodal judge. ``model_path``: a local folder (or anything ``from_pretrained`` takes)."""

    def __init__(
        self,
        model_path: str | os.PathLike,
        *,
        device: str | None = None,
        dtype: str | None = None,
        attn_implementation: str | None = "sdpa",
        family: str | None = None,
        protocols: ProtocolRegistry | str | os.PathLike | None = None,
        token_budget: int = 16384,
        max_batch_size: int = 32,
        max_new_tokens: int = 256,
        media: MediaLimits = MediaLimits(),
        trust_remote_code: bool = False,
        generation_kwargs: dict[str, Any] | None = None,
        model: Any = None,
        processor: Any = None,
        preprocess_workers: int | None = None,
    ):
        """``preprocess_workers``: threads that decode media and run the processor for a judge call
        (default: 4 on a GPU, where the host would otherwise keep the device waiting; 1 on a CPU,
        where the model itself uses every core)."""
        import torch
        from transformers import AutoModelForImageTextToText, AutoProcessor

        self.model_path = os.fspath(model_path)
        self.device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        if model is not None:
            dtype = dtype or model.dtype
        dtype = dtype or ("bfloat16" if self.device.type == "cuda" else "float32")
        self.dtype = getattr(torch, dtype) if isinstance(dtype, str) else dtype
        if isinstance(protocols, ProtocolRegistry):
            self.protocols = protocols
        else:
            self.protocols = default_registry().with_overrides(protocols)
        self.family = family or self.protocols.default_family  # a profile names the family it is for
        if self.family not in self.protocols.families():
            raise ValueError(f"unknown protocol family {self.family!r}; known: {self.protocols.families()}")
        self.token_budget = token_budget
        self.max_batch_size = max_batch_size
        self.max_new_tokens = max_new_tokens
        self.media = media
        self.preprocess_workers = preprocess_workers or (4 if self.device.type == "cuda" else 1)
        self.generation_kwargs = dict(generation_kwargs or {})  # extra model.generate() arguments

        if model is None:
            processor = AutoProcessor.from_pretrained(self.model_path, trust_remote_code=trust_remote_code)
        if not getattr(processor, "chat_template", None):
            raise ValueError(f"{self.model_path}: the processor has no chat template; a VLM judge needs one")
        if model is None:
            kwargs: dict[str, Any] = dict(dtype=self.dtype, trust_remote_code=trust_remote_code)
            if attn_implementation:
                kwargs["attn_implementation"] = attn_implementation
            if self.device.type == "cuda":
                kwargs["device_map"] = str(self.device)  # load straight onto the GPU
            model = AutoModelForImageTextToText.from_pretrained(self.model_path, **kwargs)
        self.processor = processor
        self.tokenizer = processor.tokenizer
        self.model = model.to(self.device).eval()
        # a visual shown by many items of a batch (a group's pairs, a pair's two orders) is
        # preprocessed and encoded once
        self._image_features = ImageFeatureCache(processor)
        self.vision_dedup = deduplicate_vision(self.model)
        self.vision_batched = batch_vision_attention(self.model)  # one attention call per span length, not per window
        if self.tokenizer.pad_token_id is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self.pad_id = int(self.tokenizer.pad_token_id)
        self._cache_kw = "cache" if "cache" in inspect.signature(self.model.forward).parameters else "past_key_values"
        self._plans: dict[str, _Plan] = {}
        self.revision = getattr(self.model.config, "_commit_hash", None)

    @classmethod
    def from_config(cls, cfg: Any) -> RewardModel:
        """The judge a spec's ``judge:`` section (``unireward.config.JudgeConfig``) describes."""
        return cls(
            cfg.model,
            device=cfg.device,
            dtype=None if cfg.dtype == "auto" else cfg.dtype,
            attn_implementation=cfg.attn_implementation,
            family=cfg.family,
            protocols=cfg.protocols,
            token_budget=cfg.token_budget,
            max_batch_size=cfg.max_batch_size,
            max_new_tokens=cfg.max_new_tokens,
            media=cfg.media.limits(),
        )

    @classmethod
    def from_model(cls, model: Any, processor: Any, name: str = "<in-memory>", **kwargs: Any) -> RewardModel:
        """Wraps an already-loaded model and processor (e.g. built in memory for a benchmark)."""
        return cls(name, model=model, processor=processor, **kwargs)

    # ------------------------------------------------------------------------------ public API
    def judge(
        self,
        items: Sequence[JudgeItem],
        method: str = "logits",
        swap: bool = False,
        progress: Callable[[int, int], None] | None = None,
        think: bool = False,
    ) -> list[Judgment]:
        """Judges ``items``; returns one Judgment per item, in input order. Bad items and media
        become ``invalid_input`` judgments; the rest are judged. ``think`` (generate method): the
        protocols' think variant, which reasons before its verdict, with its own budget."""
        if method not in METHODS:
            raise ValueError(f"method must be one of {METHODS}, got {method!r}")
        if think and method != "generate":
            raise ValueError("think=True reasons before the verdict: it needs method='generate'")
        results: dict[tuple[int, int], Judgment] = {}
        final: dict[int, Judgment] = {}
        requests: list[_Request] = []
        media_cache: dict[tuple[str, str], Any] = {}
        checked: list[tuple[int, JudgeItem, Protocol]] = []
        for i, item in enumerate(items):
            try:
                problem = item.problem()
                protocol = None if problem else self.protocols.get(self.family, item.task, item.resolved_mode())
            except KeyError as e:
                problem, protocol = str(e.args[0]), None
            if problem is None and protocol is not None:
                problem = self._unreadable(protocol, method, think)
            if problem or protocol is None:
                final[i] = self._invalid(item, method, problem or "no protocol", protocol)
                continue
            checked.append((i, item, protocol))

        def encode(job: tuple[int, JudgeItem, Protocol]) -> tuple[list[_Request], Judgment | None]:
            i, item, protocol = job
            orders = [item, item.swapped()] if swap and protocol.mode.is_pair else [item]
            try:
                return [
                    _Request(i, k, protocol, self.encode_item(it, protocol, media_cache, think))
                    for k, it in enumerate(orders)
                ], None
            except MediaError as e:
                return [], self._invalid(item, method, f"{e.code}: {e.reason}", protocol)
            except Exception as e:
                return [], self._invalid(item, method, f"preprocessing failed: {type(e).__name__}: {e}", protocol)

        # media decoding and the processor run in a small thread pool (PIL, numpy and the
        # tokenizer release the GIL for much of it); results keep the items' order
        workers = min(self.preprocess_workers, len(checked))
        if workers > 1:
            with ThreadPoolExecutor(workers, thread_name_prefix="unireward-preprocess") as pool:
                encoded = list(pool.map(encode, checked))
        else:
            encoded = [encode(job) for job in checked]
        for (i, _, _), (reqs, invalid) in zip(checked, encoded):
            if invalid is not None:
                final[i] = invalid
            requests += reqs
        if method == "logits":
            for r in requests:
                self._plan(r.protocol)  # fail early (and clearly) on a protocol this tokenizer cannot read
        groups: dict[str, list[_Request]] = defaultdict(list)
        for r in requests:
            groups[f"{r.protocol.id}@{r.protocol.digest}"].append(r)
        done = 0
        for reqs in groups.values():
            extra = (
                reqs[0].protocol.budget(self.max_new_tokens, think)
                if method == "generate"
                else len(max(self._plan(reqs[0].protocol).tries[0].paths, key=len))
            )
            for batch_idx in plan_batches([r.length for r in reqs], self.token_budget, self.max_batch_size, extra):
                batch = [reqs[j] for j in batch_idx]
                for r, j in zip(batch, self._run_isolating(batch, method, think)):
                    results[(r.index, r.order)] = j
                done += len(batch)
                if progress:
                    progress(done, len(requests))
        for i, item in enumerate(items):
            if i in final:
                continue
            if (i, 1) in results:
                final[i] = _combine_swap(results[(i, 0)], results[(i, 1)])
            else:
                final[i] = results[(i, 0)]
            final[i].item_id = item.id
        return [final[i] for i in range(len(items))]

    def _unreadable(self, protocol: Protocol, method: str, think: bool) -> str | None:
        """Why ``method`` cannot judge under ``protocol``, or None."""
        if method == "logits" and not protocol.reads_logits:
            what = "reasons before its verdict" if protocol.reasons else "answers with a score for each candidate"
            return f"{protocol.id} {what}: it is read from generated text, use method=generate"
        if think and protocol.think_template is None and not protocol.reasons:
            return f"{protocol.id} has no think variant (a 'think:' template in the protocols or profile)"
        return None

    def provenance(
        self, protocol: Protocol | None, method: str, swap: bool = False, think: bool = False
    ) -> dict[str, Any]:
        import transformers

        prov: dict[str, Any] = dict(
            model=self.model_path,
            revision=self.revision,
            method=method,
            swap=swap,
            dtype=str(self.dtype).replace("torch.", ""),
            unireward=__version__,
            transformers=transformers.__version__,
        )
        if protocol is not None:
            prov.update(protocol=protocol.id, protocol_digest=protocol.digest)
        if self.protocols.profile:
            prov["profile"] = {k: self.protocols.profile.get(k) for k in ("name", "digest")}
        if method == "generate":
            budget = protocol.budget(self.max_new_tokens, think) if protocol else self.max_new_tokens
            prov["decoding"] = dict(greedy=True, max_new_tokens=budget, think=think, **self.generation_kwargs)
        return prov

    # ------------------------------------------------------------------------------ preprocessing
    def messages(self, item: JudgeItem, protocol: Protocol, think: bool = False) -> list[dict[str, Any]]:
        """The chat: one user turn, visuals first, then the protocol's text."""
        return chat_messages(item, protocol, think)

    def media_limits(self, protocol: Protocol | None = None) -> MediaLimits:
        """How media are read for ``protocol``: the judge's limits with the protocol's (a checkpoint
        profile's) own settings on top, sized in multiples of this model's patch x merge size."""
        limits = protocol.media_limits(self.media) if protocol is not None else self.media
        factor = _patch_factor(self.processor)
        if factor and "factor" not in (protocol.media if protocol is not None else {}):
            limits = dataclasses.replace(limits, factor=factor)
        return limits

    def encode_item(
        self, item: JudgeItem, protocol: Protocol, media_cache: dict | None = None, think: bool = False
    ) -> dict[str, Any]:
        """Processor inputs of one item under ``protocol`` (its visuals read with the protocol's limits)."""
        kind = Task(item.task).media_kind
        return self.encode_chat(
            self.messages(item, protocol, think), kind, item.visuals(), media_cache, self.media_limits(protocol)
        )

    def encode_chat(
        self,
        messages: list[dict[str, Any]],
        kind: str,
        sources: Sequence[Any],
        media_cache: dict | None = None,
        limits: MediaLimits | None = None,
    ) -> dict[str, Any]:
        """Processor inputs of a chat's user turn (media loaded with ``limits``, by default this
        judge's) up to the assistant's turn: what the judge reads and what training appends its
        target to."""
        cache = {} if media_cache is None else media_cache
        limits = limits or self.media_limits()
        visuals = []
        for src in sources:
            # a file by its reference, an in-memory visual by identity (the caller keeps it alive)
            key = ("media", kind, src if isinstance(src, str) else id(src), limits)
            if key not in cache:
                cache[key] = (src, load_media(src, kind, limits))
            visuals.append(cache[key][1])
        return self._process(messages, visuals, media_cache)

    def _process(
        self, messages: list[dict[str, Any]], visuals: Sequence[Any], cache: dict | None = None
    ) -> dict[str, Any]:
        """The processor's inputs for a chat up to the assistant's turn and its visuals in order
        (PIL images and/or Videos; video frames are given as decoded, never resampled). With a
        ``cache`` (one judge call's), each image is preprocessed once however many chats show it."""
        messages, visuals = expand_frames(messages, visuals)
        text = self.processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
        images = [v for v in visuals if not isinstance(v, Video)]
        videos = [v for v in visuals if isinstance(v, Video)]
        kwargs: dict[str, Any] = {}
        if videos:
            kwargs.update(
                videos=[v.processor_input() for v in videos],
                video_metadata=[v.metadata() for v in videos],
                do_sample_frames=False,
            )
        if images:
            return self._image_features(cache, [text], images, return_tensors="pt", **kwargs)
        return dict(self.processor(text=[text], return_tensors="pt", **kwargs))

    def collate(self, encs: list[dict[str, Any]], suffixes: list[Sequence[int]] | None = None) -> dict[str, Any]:
        """Left-pads the per-token tensors (optionally appending ``suffixes`` of answer tokens) and
        concatenates the visual tensors."""
        import torch

        rows = []
        for k, enc in enumerate(encs):
            row = dict(enc)
            if suffixes is not None and len(suffixes[k]):
                suf = torch.tensor([list(suffixes[k])], dtype=row["input_ids"].dtype)
                for key, fill in _PER_TOKEN_FILL.items():
                    if key in row:
                        add = suf if fill is None else torch.full_like(suf, 1 if key == "attention_mask" else fill)
                        row[key] = torch.cat([row[key], add], dim=1)
            rows.append(row)
        width = max(r["input_ids"].shape[1] for r in rows)
        batch: dict[str, Any] = {}
        keys = list(dict.fromkeys(k for r in rows for k in r))  # training batches may mix images and videos
        for key in keys:
            vals = [r[key] for r in rows if key in r]
            if key in _PER_TOKEN_FILL:
                fill = self.pad_id if key == "input_ids" else 0
                batch[key] = torch.cat(
                    [torch.cat([torch.full((1, width - v.shape[1]), fill, dtype=v.dtype), v], dim=1) for v in vals]
                )
            elif isinstance(vals[0], torch.Tensor):
                batch[key] = torch.cat(vals, dim=0)
            elif isinstance(vals[0], list):
                batch[key] = [x for v in vals for x in v]
            else:
                batch[key] = vals[0]
        return {k: self._to_device(v) for k, v in batch.items()}

    def _to_device(self, v: Any) -> Any:
        """A tensor on the judge's device: through pinned memory with a non-blocking copy on CUDA,
        so the host goes on preparing the next batch while the copy runs."""
        if not hasattr(v, "to"):
            return v
        if self.device.type == "cuda" and v.device.type == "cpu":
            return v.pin_memory().to(self.device, non_blocking=True)
        return v.to(self.device)

    # ------------------------------------------------------------------------------ running
    def _run_isolating(self, batch: list[_Request], method: str, think: bool = False) -> list[Judgment]:
        """Runs a batch; if it fails, runs its rows one by one so one bad row fails alone."""
        try:
            return self._run(batch, method, think)
        except Exception as e:
            if len(batch) == 1:
                log.warning("judging item %d failed: %s", batch[0].index, e)
                r = batch[0]
                return [
                    Judgment(
                        None,
                        r.protocol.task.value,
                        r.protocol.mode.value,
                        method,
                        Status.ERROR,
                        reason=f"{type(e).__name__}: {e}",
                        provenance=self.provenance(r.protocol, method, think=think),
                    )
                ]
            log.warning("a batch of %d failed (%s); retrying its rows one by one", len(batch), e)
            return [self._run_isolating([r], method, think)[0] for r in batch]

    def _run(self, batch: list[_Request], method: str, think: bool = False) -> list[Judgment]:
        import torch

        with torch.inference_mode():
            if method == "generate":
                return self._run_generate(batch, think)
            return self._run_logits(batch)

    def _stop_ids(self) -> set[int]:
        eos = self.model.generation_config.eos_token_id
        return set(eos if isinstance(eos, (list, tuple)) else [eos]) | {self.pad_id}

    def _run_generate(self, batch: list[_Request], think: bool = False) -> list[Judgment]:
        """Greedy generation within the protocol's budget, then the parser. A generation that used up
        its budget without a verdict is ``unparsed`` with reason ``truncated``."""
        protocol = batch[0].protocol
        budget = protocol.budget(self.max_new_tokens, think)
        inputs = self.collate([r.enc for r in batch])
        out = self.model.generate(
            **inputs,
            max_new_tokens=budget,
            do_sample=False,
            num_beams=1,
            temperature=None,
            top_p=None,
            top_k=None,
            pad_token_id=self.pad_id,
            **self.generation_kwargs,
        )
        new = out[:, inputs["input_ids"].shape[1] :]
        texts = self.tokenizer.batch_decode(new, skip_special_tokens=True)
        stop = self._stop_ids()
        results = []
        for r, text, ids in zip(batch, texts, new.tolist()):
            p = parse(text, r.protocol)
            reason = p.reason
            if p.status is Status.UNPARSED and len(ids) >= budget and not stop.intersection(ids):
                reason = f"truncated: no verdict within the budget of {budget} new tokens ({p.reason})"
            j = Judgment(
                None,
                r.protocol.task.value,
                r.protocol.mode.value,
                "generate",
                p.status,
                reason=reason,
                verdict=p.verdict,
                score=p.score,
                dims=p.dims,
                scores=p.scores,
                margin=p.margin,
                raw_text=text,
                provenance=self.provenance(r.protocol, "generate", think=think),
            )
            if p.score is not None and r.protocol.mode is not Mode.PAIR_SCORE:
                j.score_norm = _normalize(r.protocol, p.score, p.dims)
            results.append(j)
        self._read_after_reasoning(batch, texts, results)
        return results

    def _read_after_reasoning(self, batch: list[_Request], texts: list[str], results: list[Judgment]) -> None:
        """Generate-then-read: a pair whose generated text reasons first (``<think>...</think>``) gets
        its verdict read like the logit method's, after that reasoning (the reasoning, a line break,
        the answer prefix): probabilities for every verdict, and the most likely one as the verdict
        (the text's own verdict stays in ``raw_text``)."""
        rows = [
            k
            for k, (r, t) in enumerate(zip(batch, texts))
            if r.protocol.mode is Mode.PAIR_RANK and "</think>" in t and self._plan(r.protocol).one_pass
        ]
        if not rows:
            return
        trie = self._plan(batch[rows[0]].protocol).tries[0]
        if any(batch[k].protocol.id != batch[rows[0]].protocol.id for k in rows):
            return  # batches hold one protocol; never mix tries
        suffixes = []
        for k in rows:
            text = texts[k]
            reasoning = text[: text.index("</think>") + len("</think>")] + "\n"
            suffixes.append(list(self._tokens(reasoning)) + list(trie.path))
        inputs = self.collate([batch[k].enc for k in rows], suffixes)
        inner = getattr(self.model, "model", None)
        if inner is not None and hasattr(inner, "rope_deltas"):
            inner.rope_deltas = None  # generation left its own value there
        logits = self.model(**inputs, use_cache=False, logits_to_keep=trie.keep()).logits
        logp = logits.float().log_softmax(-1)
        offset = len(trie.path) - trie.keep() + 1
        for b, k in enumerate(rows):
            probs, mass = self._read(trie, lambda q, b=b: logp[b, len(q) - offset])
            j = results[k]
            j.probs, j.mass = probs, mass
            j.verdict = max(probs, key=probs.get)
            j.status, j.reason = Status.OK, None

    # ------------------------------------------------------------------------------ free chat
    def chat(
        self,
        conversations: Sequence[tuple[list[dict[str, Any]], list[Any]]],
        max_new_tokens: Sequence[int],
        temperature: float = 0.0,
        top_p: float = 1.0,
        seed: int | None = None,
    ) -> list[dict[str, Any]]:
        """Completes raw chats (the OpenAI-compatible route): each conversation is (messages in the
        processor's format, with {"type": "image"} / {"type": "video"} parts, and its visuals in order:
        PIL images or Videos). Greedy when ``temperature`` is 0. Returns text, token counts and the
        finish reason per conversation."""
        import torch

        encs = [self._process(messages, visuals) for messages, visuals in conversations]
        inputs = self.collate(encs)
        sampling = (
            dict(do_sample=True, temperature=temperature, top_p=top_p)
            if temperature > 0
            else dict(do_sample=False, temperature=None, top_p=None)
        )
        if seed is not None:
            torch.manual_seed(seed)
        with torch.inference_mode():
            out = self.model.generate(
                **inputs,
                max_new_tokens=max(max_new_tokens),
                num_beams=1,
                top_k=None,
                pad_token_id=self.pad_id,
                **sampling,
            )
        new = out[:, inputs["input_ids"].shape[1] :]
        eos = self._stop_ids()
        results = []
        for k, row in enumerate(new.tolist()):
            limit = max_new_tokens[k]
            stop = next((i for i, t in enumerate(row) if t in eos), None)
            if stop is not None and stop < limit:
                toks, reason = row[:stop], "stop"
            else:
                toks, reason = row[:limit], "length"
            results.append(
                dict(
                    text=self.tokenizer.decode(toks, skip_special_tokens=True),
                    prompt_tokens=int(encs[k]["input_ids"].shape[1]),
                    completion_tokens=len(toks),
                    finish_reason=reason,
                )
            )
        return results

    # ------------------------------------------------------------------------------ logit method
    def _tokens(self, text: str) -> tuple[int, ...]:
        return tuple(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def _plan(self, protocol: Protocol) -> _Plan:
        key = f"{protocol.id}@{protocol.digest}"
        if key in self._plans:
            return self._plans[key]
        if protocol.mode is Mode.PAIR_RANK:
            opts = protocol.verdict_options()
            plan = _Plan([self._trie(opts, protocol)], values=[{}])
        else:
            tries, values = [], []
            for scale in protocol.scales:
                opts = protocol.score_options(scale)
                tries.append(self._trie(opts, protocol))
                values.append(scale.options())
            plan = _Plan(tries, values=values)
            if protocol.mode is Mode.POINT_MULTI:
                plan.connector = self._tokens("\n")
                first = protocol.score_options(protocol.scales[0])
                second = protocol.score_options(protocol.scales[1])
                a, b = next(iter(first.values())), next(iter(second.values()))
                if self._tokens(a + "\n" + b) != self._tokens(a) + plan.connector + self._tokens(b):
                    raise ValueError(
                        f"{protocol.id}: this tokenizer merges tokens across the line break between score lines, "
                        "so the logit method cannot read multi-dimension scores; use method='generate'"
                    )
        self._plans[key] = plan
        return plan

    def _trie(self, options: dict[str, str], protocol: Protocol) -> AnswerTrie:
        try:
            return build_trie({k: self._tokens(v) for k, v in options.items()})
        except ValueError as e:
            raise ValueError(f"{protocol.id}: the logit method cannot separate the answers: {e}") from None

    def _run_logits(self, batch: list[_Request]) -> list[Judgment]:
        protocol = batch[0].protocol
        plan = self._plan(protocol)
        if plan.one_pass:
            trie = plan.tries[0]
            inputs = self.collate([r.enc for r in batch], [trie.path] * len(batch))
            logits = self.model(**inputs, use_cache=False, logits_to_keep=trie.keep()).logits
            logp = logits.float().log_softmax(-1)  # (B, keep, V)
            offset = len(trie.path) - trie.keep() + 1  # query q's distribution is at index len(q) - offset
            reads = [self._read(trie, lambda q, b=b: logp[b, len(q) - offset]) for b in range(len(batch))]
            dims_reads = [[x] for x in reads]
        else:
            dims_reads = self._read_with_cache(batch, plan)
        return [self._logit_judgment(r, plan, reads) for r, reads in zip(batch, dims_reads)]

    @staticmethod
    def _read(trie: AnswerTrie, dist_at: Callable) -> tuple[dict[str, float], float]:
        dist = {}
        for q in trie.queries:
            lp = dist_at(q)
            dist[q] = {c: float(lp[c].exp()) for c in trie.children(q)}
        return trie.combine(dist)

    def _read_with_cache(self, batch: list[_Request], plan: _Plan) -> list[list[tuple[dict[str, float], float]]]:
        """Reads answers over a KV cache: the prompt (plus the first answer's shared prefix) is
        encoded once; each further query path is a short continuation that is then cropped away."""
        first = plan.tries[0]
        inputs = self.collate([r.enc for r in batch], [first.common] * len(batch))
        session = _Session(self, inputs)
        reads: list[list[tuple[dict[str, float], float]]] = [[] for _ in batch]
        for d, trie in enumerate(plan.tries):
            root = session.last  # (B, V): next-token log-probs after the shared prefix
            if len(trie.queries) > 1:
                n_paths = len(trie.paths)
                rows = [b for b in range(len(batch)) for _ in range(n_paths)]
                seqs = [list(p[len(trie.common) :]) for _ in range(len(batch)) for p in trie.paths]
                logp = session.extend(seqs, rows)  # (B * n_paths, L, V)
            for b in range(len(batch)):

                def dist_at(q, b=b):
                    if len(q) == len(trie.common):
                        return root[b]
                    for k, p in enumerate(trie.paths):
                        if p[: len(q)] == q:
                            return logp[b * n_paths + k, len(q) - len(trie.common) - 1]
                    raise AssertionError("query not on any path")

                reads[b].append(self._read(trie, dist_at))
            if len(trie.queries) > 1:
                session.crop(
                    max(len(p) for p in trie.paths) - len(trie.common), rows=[b * n_paths for b in range(len(batch))]
                )
            if d + 1 < len(plan.tries):  # write this dimension's most likely value, then the next line's prefix
                nxt = plan.tries[d + 1]
                seqs = []
                for b in range(len(batch)):
                    probs, _ = reads[b][d]
                    best = max(probs, key=probs.get)
                    seqs.append(list(trie.options[best][len(trie.common) :]) + list(plan.connector) + list(nxt.common))
                session.extend(seqs)
        return reads

    def _logit_judgment(self, r: _Request, plan: _Plan, reads: list[tuple[dict[str, float], float]]) -> Judgment:
        p = r.protocol
        j = Judgment(None, p.task.value, p.mode.value, "logits", Status.OK, provenance=self.provenance(p, "logits"))
        if p.mode is Mode.PAIR_RANK:
            probs, mass = reads[0]
            j.probs = probs
            j.verdict = max(probs, key=probs.get)
            j.mass = mass
            return j
        expected = [sum(plan.values[d][k] * v for k, v in probs.items()) for d, (probs, _) in enumerate(reads)]
        j.mass = min(m for _, m in reads)
        if p.mode is Mode.POINT_SCORE:
            j.score = expected[0]
            j.distribution = reads[0][0]
        else:
            j.dims = {s.name: e for s, e in zip(p.scales, expected)}
            j.score = sum(expected) / len(expected)
        j.score_norm = _normalize(p, j.score, j.dims)
        return j

    def _invalid(self, item: JudgeItem, method: str, reason: str, protocol: Protocol | None = None) -> Judgment:
        task = item.task.value if isinstance(item.task, Task) else str(item.task)
        try:
            mode = item.resolved_mode().value
        except (ValueError, TypeError):
            mode = str(item.mode)
        return Judgment(
            item.id,
            task,
            mode,
            method,
            Status.INVALID_INPUT,
            reason=reason,
            provenance=self.provenance(protocol, method),
        )


class _Session:
    """A batch encoded once with a KV cache, extended by short continuations."""

    def __init__(self, rm: RewardModel, inputs: dict[str, Any]):
        import torch

        self.rm = rm
        inner = getattr(rm.model, "model", None)
        if inner is not None and hasattr(inner, "rope_deltas"):
            inner.rope_deltas = None  # never reuse the previous batch's value
        out = rm.model(**inputs, use_cache=True, logits_to_keep=1)
        self.cache = _cache_of(out)
        self.mask = inputs["attention_mask"]
        self.last = out.logits[:, -1].float().log_softmax(-1)
        deltas = getattr(inner, "rope_deltas", None) if inner is not None else None
        self.mrope = inner is not None and hasattr(inner, "rope_deltas")
        if self.mrope and deltas is None:  # text-only batch: positions are plain
            deltas = torch.zeros(self.mask.shape[0], 1, dtype=torch.long, device=self.mask.device)
        self.deltas = deltas

    def _select(self, rows: list[int]) -> None:
        import torch

        idx = torch.tensor(rows, device=self.mask.device)
        self.cache.reorder_cache(idx)
        self.mask = self.mask[idx]
        self.last = self.last[idx]
        if self.deltas is not None:
            self.deltas = self.deltas[idx]

    def extend(self, seqs: list[list[int]], rows: list[int] | None = None):
        """Appends ``seqs[i]`` after row ``rows[i]`` (default: row i) and returns the log-probs at every
        new position (R, L, V). ``last`` becomes each row's distribution after its last new token."""
        import torch

        if rows is not None:
            self._select(rows)
        n, width = len(seqs), max(len(s) for s in seqs)
        ids = torch.full((n, width), self.rm.pad_id, dtype=torch.long, device=self.mask.device)
        new_mask = torch.zeros((n, width), dtype=self.mask.dtype, device=self.mask.device)
        for i, s in enumerate(seqs):
            ids[i, : len(s)] = torch.tensor(s, dtype=torch.long)
            new_mask[i, : len(s)] = 1
        pos = self.mask.sum(-1, keepdim=True) + torch.arange(width, device=self.mask.device)[None, :]
        if self.mrope:
            position_ids = (pos + self.deltas).unsqueeze(0).expand(3, -1, -1)
        else:
            position_ids = pos
        self.mask = torch.cat([self.mask, new_mask], dim=1)
        out = self.rm.model(
            input_ids=ids,
            attention_mask=self.mask,
            position_ids=position_ids,
            use_cache=True,
            **{self.rm._cache_kw: self.cache},
        )
        self.cache = _cache_of(out)
        logp = out.logits.float().log_softmax(-1)
        last_idx = torch.tensor([len(s) - 1 for s in seqs], device=logp.device)
        self.last = logp[torch.arange(n, device=logp.device), last_idx]
        return logp

    def crop(self, n: int, rows: list[int]) -> None:
        """Drops the last ``n`` positions and keeps ``rows`` (undoing an expanding extend)."""
        self.cache.crop(-n)
        self.mask = self.mask[:, :-n]
        self._select(rows)


def _cache_of(out: Any) -> Any:
    """The KV cache of a forward's output (``cache`` in newer transformers, ``past_key_values`` before)."""
    cache = getattr(out, "cache", None)
    return cache if cache is not None else out.past_key_values


def expand_frames(messages: list[dict[str, Any]], visuals: Sequence[Any]) -> tuple[list[dict[str, Any]], list[Any]]:
    """A video that is sent as separate frames (``Video.as_images``) becomes one image part per frame
    in its place; everything else is kept. Visual parts are matched with ``visuals`` in order."""
    if not any(isinstance(v, Video) and v.as_images for v in visuals):
        return messages, list(visuals)
    it = iter(visuals)
    out_messages, out_visuals = [], []
    for m in messages:
        content = m.get("content")
        if not isinstance(content, list):
            out_messages.append(m)
            continue
        parts: list[dict[str, Any]] = []
        for part in content:
            if part.get("type") not in ("image", "video"):
                parts.append(part)
                continue
            v = next(it)
            if isinstance(v, Video) and v.as_images:
                parts += [{"type": "image"} for _ in v.frames]
                out_visuals += v.frames
            else:
                parts.append(part)
                out_visuals.append(v)
        out_messages.append(dict(m, content=parts))
    return out_messages, out_visuals


def _patch_factor(processor: Any) -> int | None:
    """The side of the square one visual token covers (patch size x merge size: 28 for Qwen2/2.5-VL,
    32 for Qwen3-VL), from the processor; None when it does not say."""
    ip = getattr(processor, "image_processor", None)
    patch, merge = getattr(ip, "patch_size", None), getattr(ip, "merge_size", None)
    return int(patch) * int(merge) if isinstance(patch, int) and isinstance(merge, int) else None


def _normalize(protocol: Protocol, score: float, dims: dict[str, float] | None) -> float:
    if dims:
        return sum(s.normalize(dims[s.name]) for s in protocol.scales if s.name in dims) / len(dims)
    return protocol.scales[0].normalize(score)


def _combine_swap(a: Judgment, b: Judgment) -> Judgment:
    """Combines the (A, B) judgment ``a`` with the (B, A) judgment ``b`` (in its own order)."""
    prov = dict(a.provenance, swap=True)
    orders = [dataclasses.replace(a, provenance={}), dataclasses.replace(b, provenance={})]
    out = Judgment(None, a.task, a.mode, a.method, Status.OK, orders=orders, provenance=prov)
    bad = [(name, j) for name, j in (("A,B", a), ("B,A", b)) if j.status is not Status.OK]
    if bad:
        worst = (
            Status.ERROR
            if any(j.status is Status.ERROR for _, j in bad)
            else (Status.INVALID_INPUT if any(j.status is Status.INVALID_INPUT for _, j in bad) else Status.UNPARSED)
        )
        out.status = worst
        out.reason = "; ".join(f"order {name}: {j.status.value} ({j.reason})" for name, j in bad)
        return out
    if a.probs is not None and b.probs is not None:
        back = {k: b.probs[swap_verdict(k)] for k in b.probs}
        out.probs = {k: (a.probs[k] + back[k]) / 2 for k in a.probs}
        out.verdict = max(out.probs, key=out.probs.get)
        out.agreement = max(a.probs, key=a.probs.get) == max(back, key=back.get)
        out.mass = (a.mass + b.mass) / 2 if a.mass is not None and b.mass is not None else None
        return out
    vb = swap_verdict(b.verdict)
    out.agreement = a.verdict == vb
    if a.scores is not None and b.scores is not None and len(a.scores) == len(b.scores) == 2:
        out.scores = [(a.scores[0] + b.scores[1]) / 2, (a.scores[1] + b.scores[0]) / 2]
        out.margin = out.scores[0] - out.scores[1]
    if a.mode == Mode.PAIR_SCORE.value and out.scores is not None:  # the verdict of the mean scores
        out.verdict = "first" if out.margin > 0 else "second" if out.margin < 0 else "tie"
        return out
    if out.agreement:
        out.verdict = a.verdict
    else:
        out.verdict = "tie"
        out.reason = f"the two orders disagree (A,B: {a.verdict}; B,A mapped back: {vb}); recorded as a tie"
    return out

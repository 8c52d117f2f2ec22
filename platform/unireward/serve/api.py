"""The reward endpoint's HTTP API: request and response models, and the conversion of requests into
JudgeItems with media fetched under the endpoint's policy. No Ray here.

Media in requests: a base64 ``data:`` URI, an ``s3://`` URI from an allow-listed bucket, or (only
when enabled) an ``http(s)://`` URL of a public address. Never a server-side path. A video is a data
URI of an mp4 (or another container decord reads), or a list of image data URIs (its frames).
"""

from __future__ import annotations

import ipaddress
import socket
import time
import uuid
from typing import Any, Literal, Union
from urllib.parse import urlparse

from pydantic import BaseModel, ConfigDict, Field

from ..io import media as media_io
from ..judge.group import GroupPlan, plan_group
from ..judge.types import JudgeItem, Judgment, Mode, Task

MediaRef = Union[str, list[str]]


class APIError(Exception):
    """An error answered as JSON: {"error": {"message", "type", "code"}}."""

    def __init__(self, status: int, message: str, kind: str = "invalid_request_error"):
        super().__init__(message)
        self.status, self.message, self.kind = status, message, kind


class JudgeRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    task: Task
    prompt: str = Field(..., min_length=1, max_length=32_000, description="caption or question")
    candidates: list[MediaRef] = Field(
        ...,
        min_length=1,
        max_length=2,
        description="two (pair) or one (point): media for generation tasks, answer texts for understanding tasks",
    )
    context: MediaRef | None = Field(None, description="understanding tasks: the image or video")
    mode: Mode | None = Field(None, description="default: pair_rank for two candidates, point_score for one")
    method: Literal["logits", "generate"] = "logits"
    swap: bool = Field(False, description="pairs: judge both orders and combine")
    id: str | None = Field(None, max_length=256)
    timeout_s: float | None = Field(None, gt=0, description="give up (503) after this long; at most the server's")


class BatchRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    items: list[JudgeRequest] = Field(..., min_length=1)


MAX_ANSWER_CHARS = 32_000


class RewardsRequest(BaseModel):
    """One group of G candidates for the same prompt (an RL policy's samples) to reward."""

    model_config = ConfigDict(extra="forbid")

    task: Task
    prompt: str = Field(..., min_length=1, max_length=32_000, description="caption or question")
    candidates: list[MediaRef] = Field(
        ...,
        min_length=2,
        description="the group: media for generation and editing tasks, answer texts for understanding tasks "
        "(at most the endpoint's max_group)",
    )
    context: MediaRef | None = Field(None, description="understanding and editing tasks: the image or video")
    scheme: Literal["pairwise_winrate", "pointwise", "bradley_terry"] = "pairwise_winrate"
    swap: bool = Field(True, description="pair schemes: judge every pair in both orders")
    method: Literal["logits", "generate"] = "logits"
    id: str | None = Field(None, max_length=256)
    timeout_s: float | None = Field(None, gt=0, description="give up (503) after this long; at most the server's")


class CandidateDetail(BaseModel):
    reason: str | None = Field(None, description="why this candidate has no reward (null reward)")
    duplicate_of: int | None = Field(None, description="the index of the identical candidate it shares its reward with")
    wins: int | None = None
    losses: int | None = None
    ties: int | None = None
    unparsed: int | None = None
    failed: int | None = None
    comparisons: int | None = None
    score: float | None = Field(None, description="pointwise: the score on the protocol's scale")
    note: str | None = None


class GroupDetails(BaseModel):
    candidates: list[CandidateDetail]
    valid: int
    invalid: int
    duplicates: int = Field(..., description="valid candidates identical to an earlier one (judged once)")
    judgments: int = Field(..., description="judgments the model made for this group")
    ties: int
    unparsed: int
    failed: int
    swap_agreement: float | None = Field(None, description="share of pairs whose two orders agree")
    used: int | None = Field(None, description="bradley_terry: pair judgments in the fit")
    latency_s: float
    provenance: dict[str, Any] = Field(default_factory=dict)


class RewardsResponse(BaseModel):
    id: str | None = None
    scheme: str
    rewards: list[float | None]
    details: GroupDetails


class JudgmentOut(BaseModel):
    id: str | None = None
    task: str
    mode: str
    method: str
    status: str
    reason: str | None = None
    verdict: str | None = None
    probs: dict[str, float] | None = None
    score: float | None = None
    score_norm: float | None = None
    dims: dict[str, float] | None = None
    scores: list[float] | None = None
    margin: float | None = None
    distribution: dict[str, float] | None = None
    mass: float | None = None
    raw_text: str | None = None
    agreement: bool | None = None
    orders: list[JudgmentOut] | None = None
    provenance: dict[str, Any] = Field(default_factory=dict)

    @classmethod
    def of(cls, j: Judgment) -> JudgmentOut:
        d = j.to_dict()
        d["id"] = d.pop("item_id", None)
        d["orders"] = [cls.of(o).model_dump() for o in j.orders] if j.orders else None
        return cls.model_validate(d)


class BatchResponse(BaseModel):
    judgments: list[JudgmentOut]


class ModelCard(BaseModel):
    id: str
    object: Literal["model"] = "model"
    created: int
    owned_by: str = "unireward"
    root: str | None = None


class ModelList(BaseModel):
    object: Literal["list"] = "list"
    data: list[ModelCard]


# ---------------------------------------------------------------------------- chat completions
class ImageURL(BaseModel):
    url: str


class ContentPart(BaseModel):
    model_config = ConfigDict(extra="ignore")

    type: Literal["text", "image_url", "video_url"]
    text: str | None = None
    image_url: ImageURL | None = None
    video_url: ImageURL | None = None


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="ignore")

    role: Literal["system", "user", "assistant"]
    content: str | list[ContentPart]


class ChatRequest(BaseModel):
    """The subset of OpenAI's chat completions request a judge needs; unknown fields (like the
    original client's ``do_sample``) are ignored, as vLLM does."""

    model_config = ConfigDict(extra="ignore")

    model: str
    messages: list[ChatMessage] = Field(..., min_length=1)
    max_tokens: int | None = Field(None, ge=1)
    max_completion_tokens: int | None = Field(None, ge=1)
    temperature: float = Field(0.0, ge=0, le=2)
    top_p: float = Field(1.0, gt=0, le=1)
    n: int = Field(1, ge=1)
    stream: bool = False
    seed: int | None = None


class ChatChoiceMessage(BaseModel):
    role: Literal["assistant"] = "assistant"
    content: str


class ChatChoice(BaseModel):
    index: int
    message: ChatChoiceMessage
    finish_reason: str


class Usage(BaseModel):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int
    max_tokens_clamped_from: int | None = Field(
        None, description="the max_tokens asked for, when it was over the endpoint's limit and generation stopped at it"
    )


class ChatResponse(BaseModel):
    id: str
    object: Literal["chat.completion"] = "chat.completion"
    created: int
    model: str
    choices: list[ChatChoice]
    usage: Usage

    @classmethod
    def of(cls, model: str, result: dict[str, Any], max_tokens_clamped_from: int | None = None) -> ChatResponse:
        return cls(
            id=f"chatcmpl-{uuid.uuid4().hex}",
            created=int(time.time()),
            model=model,
            choices=[
                ChatChoice(
                    index=0, message=ChatChoiceMessage(content=result["text"]), finish_reason=result["finish_reason"]
                )
            ],
            usage=Usage(
                prompt_tokens=result["prompt_tokens"],
                completion_tokens=result["completion_tokens"],
                total_tokens=result["prompt_tokens"] + result["completion_tokens"],
                max_tokens_clamped_from=max_tokens_clamped_from,
            ),
        )


# ---------------------------------------------------------------------------- media policy
class MediaPolicy:
    def __init__(
        self,
        limits: media_io.MediaLimits,
        s3_buckets: list[str],
        allow_http: bool,
        max_images: int,
        http_timeout_s: float = 10.0,
    ):
        self.limits, self.s3_buckets, self.allow_http = limits, set(s3_buckets), allow_http
        self.max_images, self.http_timeout_s = max_images, http_timeout_s

    def count(self, ref: Any) -> int:
        return len(ref) if isinstance(ref, list) else (1 if isinstance(ref, str) else 0)

    def source(self, ref: str) -> Any:
        """What the media loader may read for a reference: bytes, or an allow-listed s3 URI."""
        if not isinstance(ref, str) or not ref:
            raise APIError(400, "a media reference must be a non-empty string")
        if ref.startswith("data:"):
            return ref
        if ref.startswith("s3://"):
            bucket = ref[5:].split("/", 1)[0]
            if bucket not in self.s3_buckets:
                raise APIError(400, f"s3 bucket {bucket!r} is not allowed on this endpoint")
            return ref
        if ref.startswith(("http://", "https://")):
            if not self.allow_http:
                raise APIError(400, "fetching http(s) media is disabled on this endpoint: send a data: URI")
            return self._fetch(ref)
        raise APIError(
            400,
            "media must be a data: URI, an allowed s3:// URI"
            + (" or an http(s) URL" if self.allow_http else "")
            + "; server paths are not accepted",
        )

    def _fetch(self, url: str) -> bytes:
        import httpx

        host = urlparse(url).hostname or ""
        try:
            addresses = {info[4][0] for info in socket.getaddrinfo(host, None)}
        except OSError:
            raise APIError(400, f"cannot resolve {host!r}") from None
        for a in addresses:
            ip = ipaddress.ip_address(a)
            if ip.is_private or ip.is_loopback or ip.is_link_local or ip.is_reserved or ip.is_multicast:
                raise APIError(400, f"{host!r} resolves to a non-public address; not fetched")
        try:
            with httpx.stream("GET", url, timeout=self.http_timeout_s, follow_redirects=False) as r:
                if r.status_code != 200:
                    raise APIError(400, f"fetching {url} gave HTTP {r.status_code}")
                data = b""
                for chunk in r.iter_bytes():
                    data += chunk
                    if len(data) > self.limits.max_bytes:
                        raise APIError(413, f"{url} is larger than {self.limits.max_bytes} bytes")
                return data
        except httpx.HTTPError as e:
            raise APIError(400, f"fetching {url} failed: {e}") from None

    def load(self, ref: MediaRef, kind: str) -> Any:
        """Decoded media (PIL image or Video) or a MediaError the judge turns into invalid_input."""
        try:
            if isinstance(ref, list):
                if kind != "video":
                    raise APIError(400, "a list of frames is only accepted for video tasks")
                if len(ref) > self.limits.max_frames:
                    raise APIError(400, f"{len(ref)} frames; at most {self.limits.max_frames} per video")
                frames = [media_io.load_image(self.source(f), self.limits) for f in ref]
                return media_io.load_video(frames, self.limits)
            return media_io.load_media(self.source(ref), kind, self.limits)
        except media_io.MediaError as e:
            return e


def to_item(req: JudgeRequest, policy: MediaPolicy) -> JudgeItem:
    """A JudgeItem with decoded media. Raises APIError for requests the endpoint refuses."""
    task = Task(req.task)
    kind = task.media_kind
    n = (sum(policy.count(c) for c in req.candidates) if task.is_generation else 0) + (
        policy.count(req.context) if task.has_context else 0
    )
    if n > policy.max_images:
        raise APIError(400, f"{n} images (video frames count) in one item; at most {policy.max_images}")
    if not task.has_context and req.context is not None:
        raise APIError(400, "generation tasks take no context: the candidates are the visuals")
    if task.has_context and req.context is None:
        what = "image to edit" if task is Task.IMAGE_EDITING else f"{kind} the question is about"
        raise APIError(400, f"{task.value} needs the {what} (context)")
    if task.is_generation:
        cands = [policy.load(c, kind) for c in req.candidates]
    else:
        if any(not isinstance(c, str) for c in req.candidates):
            raise APIError(400, "understanding candidates are answer texts")
        cands = list(req.candidates)
    context = policy.load(req.context, kind) if task.has_context else None
    item = JudgeItem(task, req.prompt, cands, context=context, mode=req.mode, id=req.id)
    problem = item.problem()
    if problem:
        raise APIError(400, problem)
    return item


def _candidate_key(ref: Any) -> Any:
    return tuple(ref) if isinstance(ref, list) else ref


def to_group(req: RewardsRequest, policy: MediaPolicy) -> tuple[GroupPlan, list[JudgeItem]]:
    """The group's plan and the items to judge. Each candidate's media is decoded once and shared by
    the items it is in; a candidate that cannot be used gets its reason (and a null reward). Raises
    APIError for requests the endpoint refuses as a whole."""
    task = Task(req.task)
    kind = task.media_kind
    if not task.has_context and req.context is not None:
        raise APIError(400, "generation tasks take no context: the candidates are the visuals")
    if task.has_context and req.context is None:
        what = "image to edit" if task is Task.IMAGE_EDITING else f"{kind} the question is about"
        raise APIError(400, f"{task.value} needs the {what} (context)")
    context = None
    if task.has_context:
        context = policy.load(req.context, kind)
        if isinstance(context, media_io.MediaError):
            raise APIError(400, f"context media could not be used: {context.code}: {context.reason}")
    per_item = 2 if req.scheme != "pointwise" else 1
    room = policy.max_images - policy.count(req.context) if task.has_context else policy.max_images
    values: list[Any] = []
    reasons: list[str | None] = []
    for c in req.candidates:
        value, reason = None, None
        if task.is_generation:
            n = policy.count(c)
            if n * per_item > room:
                reason = f"{n} images (video frames count): a judged item holds at most {policy.max_images}"
            else:
                try:
                    value = policy.load(c, kind)
                except APIError as e:
                    reason = e.message
                if isinstance(value, media_io.MediaError):
                    value, reason = None, f"{value.code}: {value.reason}"
        elif not isinstance(c, str):
            reason = "understanding candidates are answer texts"
        elif not c.strip():
            reason = "empty answer"
        elif len(c) > MAX_ANSWER_CHARS:
            reason = f"answer of {len(c)} characters; at most {MAX_ANSWER_CHARS}"
        else:
            value = c
        values.append(value)
        reasons.append(reason)
    if all(r is not None for r in reasons):
        raise APIError(
            400, "no candidate of the group can be judged: " + "; ".join(f"{i}: {r}" for i, r in enumerate(reasons))
        )
    plan = plan_group(req.scheme, [_candidate_key(c) for c in req.candidates], reasons, req.swap)
    mode = Mode.POINT_SCORE if req.scheme == "pointwise" else Mode.PAIR_RANK
    base = req.id or "group"
    items = [
        JudgeItem(
            task,
            req.prompt,
            [values[k] for k in job],
            context=context,
            mode=mode,
            id=f"{base}:{'-'.join(map(str, job))}",
        )
        for job in plan.jobs
    ]
    return plan, items


def media_errors(item: JudgeItem) -> list[str]:
    """The reasons of media in ``item`` that could not be decoded."""
    return [f"{m.code}: {m.reason}" for m in [*item.candidates, item.context] if isinstance(m, media_io.MediaError)]


def to_chat(req: ChatRequest, policy: MediaPolicy) -> tuple[list[dict[str, Any]], list[Any]]:
    """Processor-format messages and their visuals, from an OpenAI chat request."""
    if req.stream:
        raise APIError(400, "stream=true is not supported")
    if req.n != 1:
        raise APIError(400, "n must be 1")
    messages, visuals = [], []
    for m in req.messages:
        if isinstance(m.content, str):
            messages.append({"role": m.role, "content": [{"type": "text", "text": m.content}]})
            continue
        parts = []
        for p in m.content:
            if p.type == "text":
                parts.append({"type": "text", "text": p.text or ""})
                continue
            ref = p.image_url or p.video_url
            if ref is None:
                raise APIError(400, f"a {p.type} part needs its url")
            kind = "image" if p.type == "image_url" else "video"
            v = policy.load(ref.url, kind)
            if isinstance(v, media_io.MediaError):
                raise APIError(400, f"{p.type}: {v.code}: {v.reason}")
            visuals.append(v)
            parts.append({"type": kind})
        messages.append({"role": m.role, "content": parts})
    if len(visuals) > policy.max_images:
        raise APIError(400, f"{len(visuals)} images in one request; at most {policy.max_images}")
    return messages, visuals

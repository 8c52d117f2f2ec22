"""Clients of the reward endpoint: ``RewardClient`` (sync) and ``AsyncRewardClient``, with retries
(exponential backoff with jitter, honouring Retry-After, on 429, 503 and connection errors), a
concurrency limit and per-request timeouts; and ``RemoteJudge``, the judge backend that lets a
curate or score spec use a served judge (``judge.endpoint``) instead of loading the model.

Media are sent inline: local files, bytes and PIL images as base64 data URIs, decoded videos as
lists of frames; ``s3://`` URIs are passed through (the endpoint must allow the bucket).
"""

from __future__ import annotations

import asyncio
import dataclasses
import mimetypes
import os
import random
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
from PIL import Image

from ..io import media as media_io
from ..judge.types import JudgeItem, Judgment, Status, Task

RETRY_STATUS = {429, 502, 503, 504}

CONNECTION_ERRORS = (httpx.ConnectError, httpx.ReadError, httpx.RemoteProtocolError, httpx.TimeoutException)


class EndpointError(RuntimeError):
    """The endpoint answered with an error that retrying does not fix (or retries ran out)."""

    def __init__(self, status: int | None, message: str):
        super().__init__(f"{status}: {message}" if status else message)
        self.status, self.message = status, message


def encode_media(src: Any, kind: str) -> str | list[str]:
    """A wire reference for one image or video source."""
    if isinstance(src, media_io.MediaError):
        raise src
    if isinstance(src, str) and src.startswith(("data:", "s3://")):
        return src
    if isinstance(src, Image.Image):
        return media_io.to_data_uri(media_io.encode_image(src.convert("RGB"), "PNG"), "image/png")
    if isinstance(src, media_io.Video):
        return [media_io.to_data_uri(media_io.encode_image(f, "PNG"), "image/png") for f in src.frames]
    if isinstance(src, (list, tuple)):
        return [encode_media(f, "image") for f in src]  # type: ignore[misc]
    data = media_io.read_source(src)
    name = os.fspath(src) if isinstance(src, (str, os.PathLike)) else ""
    mime = mimetypes.guess_type(name)[0] if name else None
    if mime is None:
        mime = "video/mp4" if kind == "video" else "image/png"
    return media_io.to_data_uri(data, mime)


def item_payload(item: JudgeItem, method: str, swap: bool, timeout_s: float | None = None) -> dict[str, Any]:
    task = Task(item.task)
    kind = task.media_kind
    cands = [encode_media(c, kind) for c in item.candidates] if task.is_generation else list(item.candidates)
    body: dict[str, Any] = dict(task=task.value, prompt=item.prompt, candidates=cands, method=method, swap=swap)
    if item.context is not None:
        body["context"] = encode_media(item.context, kind)
    if item.mode is not None:
        body["mode"] = item.mode.value if hasattr(item.mode, "value") else item.mode
    if item.id is not None:
        body["id"] = item.id
    if timeout_s:
        body["timeout_s"] = timeout_s
    return body


@dataclasses.dataclass
class GroupRewards:
    """The answer of ``/v1/rewards``: one reward per candidate (None with a reason in
    ``details["candidates"][i]["reason"]``), the scheme and the group's details."""

    rewards: list[float | None]
    scheme: str
    details: dict[str, Any]

    @property
    def reasons(self) -> list[str | None]:
        return [c.get("reason") for c in self.details.get("candidates", [])]


def rewards_payload(
    task: str | Task,
    prompt: str,
    candidates: Sequence[Any],
    scheme: str = "pairwise_winrate",
    context: Any = None,
    swap: bool = True,
    method: str = "logits",
    timeout_s: float | None = None,
    id: str | None = None,
) -> tuple[dict[str, Any], dict[int, str]]:
    """The request body of a group, and the reasons of candidates that cannot be sent (unreadable
    local media): those stay out of the request and get a null reward with their reason."""
    task = Task(task)
    kind = task.media_kind
    cands, unsent = [], {}
    for k, c in enumerate(candidates):
        if not task.is_generation:
            cands.append(c)
            continue
        try:
            cands.append(encode_media(c, kind))
        except media_io.MediaError as e:
            unsent[k] = f"{e.code}: {e.reason}"
    body: dict[str, Any] = dict(
        task=task.value, prompt=prompt, candidates=cands, scheme=scheme, swap=swap, method=method
    )
    if context is not None:
        body["context"] = encode_media(context, kind)
    if timeout_s:
        body["timeout_s"] = timeout_s
    if id is not None:
        body["id"] = id
    return body, unsent


def group_from_json(d: dict[str, Any] | None, n: int, unsent: dict[int, str], scheme: str) -> GroupRewards:
    """The endpoint's answer with the unsent candidates put back in their places (null, with reason)."""
    sent = [k for k in range(n) if k not in unsent]
    rewards: list[float | None] = [None] * n
    details = dict(d["details"]) if d else dict(candidates=[{} for _ in sent])
    per = list(details.get("candidates") or [{} for _ in sent])
    cands: list[dict[str, Any]] = [dict(reason=unsent[k]) if k in unsent else {} for k in range(n)]
    for k, r, c in zip(sent, d["rewards"] if d else [None] * len(sent), per):
        rewards[k] = r
        c = dict(c)
        if c.get("duplicate_of") is not None:
            c["duplicate_of"] = sent[c["duplicate_of"]]
        cands[k] = c
    details["candidates"] = cands
    if unsent:
        details["unsent"] = len(unsent)
    return GroupRewards(rewards, d["scheme"] if d else scheme, details)


def _too_few(n: int, unsent: dict[int, str], scheme: str) -> GroupRewards | None:
    """A group with fewer than two sendable candidates is answered here (all null, with reasons)."""
    if n - len(unsent) >= 2:
        return None
    reasons = {k: unsent.get(k, "fewer than two candidates of the group could be sent") for k in range(n)}
    return group_from_json(None, n, reasons, scheme)


def judgment_from_json(d: dict[str, Any]) -> Judgment:
    orders = [judgment_from_json(o) for o in d["orders"]] if d.get("orders") else None
    return Judgment(
        item_id=d.get("id"),
        task=d["task"],
        mode=d["mode"],
        method=d["method"],
        status=Status(d["status"]),
        reason=d.get("reason"),
        verdict=d.get("verdict"),
        probs=d.get("probs"),
        score=d.get("score"),
        score_norm=d.get("score_norm"),
        scores=d.get("scores"),
        margin=d.get("margin"),
        dims=d.get("dims"),
        distribution=d.get("distribution"),
        mass=d.get("mass"),
        raw_text=d.get("raw_text"),
        agreement=d.get("agreement"),
        orders=orders,
        provenance=d.get("provenance") or {},
    )


def _invalid(item: JudgeItem, method: str, e: media_io.MediaError) -> Judgment:
    return Judgment(
        item.id,
        str(getattr(item.task, "value", item.task)),
        item.resolved_mode().value,
        method,
        Status.INVALID_INPUT,
        reason=f"{e.code}: {e.reason}",
    )


def _payloads(
    items: Sequence[JudgeItem], method: str, swap: bool
) -> tuple[list[Judgment | None], list[tuple[int, dict]]]:
    """Request bodies of the items that can be sent, and invalid_input judgments (in place) for
    those whose media cannot be read here."""
    out: list[Judgment | None] = [None] * len(items)
    send: list[tuple[int, dict]] = []
    for k, it in enumerate(items):
        try:
            send.append((k, item_payload(it, method, swap)))
        except media_io.MediaError as e:
            out[k] = _invalid(it, method, e)
    return out, send


def _server_chunk(readyz: Any, default: int) -> int:
    """Items per batch request the endpoint accepts (its /readyz limits), or ``default``."""
    try:
        return int((readyz.json().get("limits") or {}).get("max_items_per_request") or default)
    except Exception:
        return default


def _retry_delay(resp: Any, attempt: int, max_retries: int, base: float) -> float | None:
    """Seconds to wait before retrying ``resp`` (None: it is final); raises EndpointError for a
    final error."""
    if resp.status_code in RETRY_STATUS and attempt < max_retries:
        return _backoff(attempt, base, resp.headers.get("retry-after"))
    if resp.status_code >= 400:
        raise EndpointError(resp.status_code, _error_message(resp))
    return None


def _connection_failed(e: Exception, attempt: int, max_retries: int, base: float) -> float:
    """Seconds to wait after a connection error, or EndpointError once the retries are spent."""
    if attempt == max_retries:
        raise EndpointError(None, f"{type(e).__name__}: {e} (after {attempt + 1} attempts)") from None
    return _backoff(attempt, base, None)


def _remaining(end: float | None) -> float | None:
    """Seconds left before the deadline ``end`` (monotonic), None without one."""
    if end is None:
        return None
    return max(end - time.monotonic(), 0.001)


def _within(end: float | None, delay: float, last: Any) -> float:
    """``delay`` if retrying after it still fits before the deadline; else EndpointError."""
    if end is not None and time.monotonic() + delay >= end:
        if isinstance(last, Exception):
            raise EndpointError(None, f"deadline passed; last error: {type(last).__name__}: {last}")
        raise EndpointError(last.status_code, f"deadline passed; last answer: {_error_message(last)}")
    return delay


def _backoff(attempt: int, base: float, retry_after: str | None) -> float:
    if retry_after:
        try:
            return min(float(retry_after), 30.0)
        except ValueError:
            pass
    return min(base * 2**attempt, 10.0) * (0.5 + random.random())


def _error_message(resp) -> str:
    try:
        return resp.json()["error"]["message"]
    except Exception:
        return resp.text[:500]


class RewardClient:
    """Synchronous client. ``judge_batch`` splits the items into requests of ``chunk_size`` and sends
    up to ``max_concurrency`` of them at once."""

    def __init__(
        self,
        base_url: str,
        token: str | None = None,
        timeout_s: float = 120.0,
        max_retries: int = 5,
        backoff_s: float = 0.5,
        max_concurrency: int = 8,
        chunk_size: int = 16,
    ):
        self.base_url = base_url.rstrip("/")
        headers = {"authorization": f"Bearer {token}"} if token else {}
        self._http = httpx.Client(
            base_url=self.base_url,
            headers=headers,
            timeout=timeout_s,
            limits=httpx.Limits(max_connections=max_concurrency),
        )
        self.max_retries, self.backoff_s = max_retries, backoff_s
        self.max_concurrency, self.chunk_size = max_concurrency, chunk_size
        self._lock = threading.Lock()
        self._server_chunk: int | None = None

    def close(self) -> None:
        self._http.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def request(self, method: str, path: str, json: Any = None, deadline_s: float | None = None) -> Any:
        """One request with retries; ``deadline_s``: give up (EndpointError) once this many seconds
        have passed, however many retries are left."""
        end = time.monotonic() + deadline_s if deadline_s else None
        for attempt in range(self.max_retries + 1):
            timeout = _remaining(end)
            try:
                resp = self._http.request(method, path, json=json, **({"timeout": timeout} if end else {}))
            except CONNECTION_ERRORS as e:
                time.sleep(_within(end, _connection_failed(e, attempt, self.max_retries, self.backoff_s), e))
                continue
            delay = _retry_delay(resp, attempt, self.max_retries, self.backoff_s)
            if delay is None:
                return resp.json()
            time.sleep(_within(end, delay, resp))
        raise AssertionError("unreachable")

    def health(self) -> bool:
        try:
            return self._http.get("/readyz").status_code == 200
        except Exception:
            return False

    def _chunk(self) -> int:
        """Items per batch request: ours, but never more than the endpoint accepts (from /readyz)."""
        with self._lock:
            if self._server_chunk is None:
                try:
                    self._server_chunk = _server_chunk(self._http.get("/readyz"), self.chunk_size)
                except Exception:
                    self._server_chunk = self.chunk_size
            return max(1, min(self.chunk_size, self._server_chunk))

    def models(self) -> list[str]:
        return [m["id"] for m in self.request("GET", "/v1/models")["data"]]

    def judge(self, item: JudgeItem, method: str = "logits", swap: bool = False) -> Judgment:
        try:
            body = item_payload(item, method, swap)
        except media_io.MediaError as e:
            return _invalid(item, method, e)
        return judgment_from_json(self.request("POST", "/v1/judge", body))

    def judge_batch(self, items: Sequence[JudgeItem], method: str = "logits", swap: bool = False) -> list[Judgment]:
        out, send = _payloads(items, method, swap)
        size = self._chunk()
        chunks = [send[i : i + size] for i in range(0, len(send), size)]

        def post(chunk):
            res = self.request("POST", "/v1/judge/batch", {"items": [b for _, b in chunk]})
            return [(k, judgment_from_json(j)) for (k, _), j in zip(chunk, res["judgments"])]

        with ThreadPoolExecutor(max_workers=self.max_concurrency) as pool:
            for done in pool.map(post, chunks):
                for k, j in done:
                    out[k] = j
        return out  # type: ignore[return-value]

    def chat(self, messages: list[dict[str, Any]], model: str = "UnifiedReward", **kwargs: Any) -> dict[str, Any]:
        return self.request("POST", "/v1/chat/completions", dict(model=model, messages=messages, **kwargs))

    def rewards(
        self,
        task: str | Task,
        prompt: str,
        candidates: Sequence[Any],
        scheme: str = "pairwise_winrate",
        context: Any = None,
        swap: bool = True,
        method: str = "logits",
        timeout_s: float | None = None,
        deadline_s: float | None = None,
        id: str | None = None,
    ) -> GroupRewards:
        """One reward per candidate of a group (``/v1/rewards``): media as paths, bytes, PIL images
        or decoded videos for generation tasks, answer texts for understanding tasks."""
        body, unsent = rewards_payload(task, prompt, candidates, scheme, context, swap, method, timeout_s, id)
        few = _too_few(len(candidates), unsent, scheme)
        if few is not None:
            return few
        return group_from_json(self.request("POST", "/v1/rewards", body, deadline_s), len(candidates), unsent, scheme)


class AsyncRewardClient:
    """Asynchronous client with the same behaviour; ``max_concurrency`` requests in flight at most."""

    def __init__(
        self,
        base_url: str,
        token: str | None = None,
        timeout_s: float = 120.0,
        max_retries: int = 5,
        backoff_s: float = 0.5,
        max_concurrency: int = 8,
        chunk_size: int = 16,
    ):
        headers = {"authorization": f"Bearer {token}"} if token else {}
        self._http = httpx.AsyncClient(
            base_url=base_url.rstrip("/"),
            headers=headers,
            timeout=timeout_s,
            limits=httpx.Limits(max_connections=max_concurrency),
        )
        self._sem = asyncio.Semaphore(max_concurrency)
        self.max_retries, self.backoff_s, self.chunk_size = max_retries, backoff_s, chunk_size
        self._server_chunk: int | None = None

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self):
        return self

    async def __aexit__(self, *exc):
        await self.aclose()

    async def request(self, method: str, path: str, json: Any = None, deadline_s: float | None = None) -> Any:
        end = time.monotonic() + deadline_s if deadline_s else None
        async with self._sem:
            for attempt in range(self.max_retries + 1):
                timeout = _remaining(end)
                try:
                    resp = await self._http.request(method, path, json=json, **({"timeout": timeout} if end else {}))
                except CONNECTION_ERRORS as e:
                    delay = _connection_failed(e, attempt, self.max_retries, self.backoff_s)
                    await asyncio.sleep(_within(end, delay, e))
                    continue
                delay = _retry_delay(resp, attempt, self.max_retries, self.backoff_s)
                if delay is None:
                    return resp.json()
                await asyncio.sleep(_within(end, delay, resp))
        raise AssertionError("unreachable")

    async def rewards(
        self,
        task: str | Task,
        prompt: str,
        candidates: Sequence[Any],
        scheme: str = "pairwise_winrate",
        context: Any = None,
        swap: bool = True,
        method: str = "logits",
        timeout_s: float | None = None,
        deadline_s: float | None = None,
        id: str | None = None,
    ) -> GroupRewards:
        """As ``RewardClient.rewards``."""
        body, unsent = rewards_payload(task, prompt, candidates, scheme, context, swap, method, timeout_s, id)
        few = _too_few(len(candidates), unsent, scheme)
        if few is not None:
            return few
        answer = await self.request("POST", "/v1/rewards", body, deadline_s)
        return group_from_json(answer, len(candidates), unsent, scheme)

    async def judge(self, item: JudgeItem, method: str = "logits", swap: bool = False) -> Judgment:
        try:
            body = item_payload(item, method, swap)
        except media_io.MediaError as e:
            return _invalid(item, method, e)
        return judgment_from_json(await self.request("POST", "/v1/judge", body))

    async def judge_batch(
        self, items: Sequence[JudgeItem], method: str = "logits", swap: bool = False
    ) -> list[Judgment]:
        out, send = _payloads(items, method, swap)

        async def post(chunk):
            res = await self.request("POST", "/v1/judge/batch", {"items": [b for _, b in chunk]})
            for (k, _), j in zip(chunk, res["judgments"]):
                out[k] = judgment_from_json(j)

        if self._server_chunk is None:
            try:
                self._server_chunk = _server_chunk(await self._http.get("/readyz"), self.chunk_size)
            except Exception:
                self._server_chunk = self.chunk_size
        size = max(1, min(self.chunk_size, self._server_chunk))
        await asyncio.gather(*(post(send[i : i + size]) for i in range(0, len(send), size)))
        return out  # type: ignore[return-value]


class RemoteJudge:
    """A served judge behind the interface curation uses: ``judge(items, method, swap)``."""

    def __init__(
        self,
        endpoint: str,
        token: str | None = None,
        media: media_io.MediaLimits = media_io.MediaLimits(),
        **client_kwargs: Any,
    ):
        self.client = RewardClient(endpoint, token=token, **client_kwargs)
        self.endpoint = endpoint
        self.media = media

    @classmethod
    def from_config(cls, cfg: Any) -> RemoteJudge:
        """The served judge a spec's ``judge:`` section names (``endpoint``; its token from ``token_env``)."""
        return cls(cfg.endpoint, token=os.environ.get(cfg.token_env), media=cfg.media.limits())

    def judge(
        self, items: Sequence[JudgeItem], method: str = "logits", swap: bool = False, progress=None
    ) -> list[Judgment]:
        out = self.client.judge_batch(items, method, swap)
        for j in out:
            j.provenance.setdefault("endpoint", self.endpoint)
        return out

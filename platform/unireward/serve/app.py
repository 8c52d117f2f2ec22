"""The online reward endpoint on Ray Serve: a FastAPI ingress deployment that holds one RewardModel
per replica, batches concurrent requests dynamically (``@serve.batch``) and autoscales on ongoing
requests. Deploy with ``serve deploy serve/reward.yaml`` or run locally with ``unireward serve``.

Routes: POST /v1/judge, POST /v1/judge/batch, POST /v1/rewards (one reward per candidate of a
group, for RL), POST /v1/chat/completions (OpenAI-compatible, generate method), GET /v1/models,
/healthz, /readyz, and FastAPI's /docs and /openapi.json.
Errors are JSON ({"error": {"message", "type", "code"}}): 400 bad request or media, 401 missing or
wrong bearer token, 413 body too large, 422 schema violation, 429 too many requests in flight on
this replica, 503 timed out or not ready.
"""

import asyncio
import hmac
import logging
import os
import time
from pathlib import Path
from typing import Any

from fastapi import Depends, FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from ray import serve
from starlette.exceptions import HTTPException as StarletteHTTPException

from .. import __version__
from ..config import ServeConfig
from ..judge.backends import make_judge
from ..judge.group import group_rewards
from ..judge.types import JudgeItem, Judgment, Status
from .api import (
    APIError,
    BatchRequest,
    BatchResponse,
    ChatRequest,
    ChatResponse,
    JudgeRequest,
    JudgmentOut,
    MediaPolicy,
    ModelCard,
    ModelList,
    RewardsRequest,
    RewardsResponse,
    media_errors,
    to_chat,
    to_group,
    to_item,
)

log = logging.getLogger(__name__)
LOOPBACK = ("127.0.0.1", "localhost", "::1")


def accepted_tokens(cfg: ServeConfig) -> set[str]:
    tokens = {t.strip() for t in os.environ.get(cfg.tokens_env, "").split(",") if t.strip()}
    if cfg.tokens_file:
        tokens |= {line.strip() for line in Path(cfg.tokens_file).read_text().splitlines() if line.strip()}
    return tokens


def auth_required(cfg: ServeConfig) -> bool:
    """Bearer tokens are required unless the endpoint is bound to loopback (and not asked for)."""
    return cfg.require_auth if cfg.require_auth is not None else cfg.host not in LOOPBACK


def check_auth_config(cfg: ServeConfig) -> set[str]:
    tokens = accepted_tokens(cfg)
    if auth_required(cfg) and not tokens:
        raise ValueError(
            f"the endpoint needs bearer tokens (it listens on {cfg.host}): set {cfg.tokens_env}=token1,token2 "
            "or tokens_file, or bind to 127.0.0.1 for a local endpoint without auth"
        )
    return tokens


def _error(status: int, message: str, kind: str, headers: dict | None = None) -> JSONResponse:
    return JSONResponse(
        status_code=status, content={"error": {"message": message, "type": kind, "code": status}}, headers=headers
    )


class _TooLarge(Exception):
    pass


class BodyLimit:
    """ASGI middleware: bodies over ``limit`` bytes get 413, whether or not they declare a length."""

    def __init__(self, app, limit: int):
        self.app, self.limit = app, limit

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        length = dict(scope.get("headers") or []).get(b"content-length")
        if length is not None and length.isdigit() and int(length) > self.limit:
            return await _error(413, f"request body over {self.limit} bytes", "request_too_large")(scope, receive, send)
        seen, started = 0, False

        async def limited():
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.limit:
                    raise _TooLarge
            return message

        async def tracking_send(message):
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, limited, tracking_send)
        except _TooLarge:
            if not started:
                await _error(413, f"request body over {self.limit} bytes", "request_too_large")(scope, receive, send)


def build_fastapi(cfg: ServeConfig) -> FastAPI:
    api = FastAPI(
        title="unireward reward endpoint",
        version=__version__,
        description="A unified multimodal judge: image/video generation and understanding, pairwise "
        "and pointwise. See docs/serving.md.",
    )
    api.add_middleware(BodyLimit, limit=int(cfg.max_body_mb * 2**20))

    @api.exception_handler(APIError)
    async def _api_error(request: Request, e: APIError):
        headers = {401: {"WWW-Authenticate": "Bearer"}, 429: {"Retry-After": "1"}}.get(e.status)
        return _error(e.status, e.message, e.kind, headers)

    @api.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, e: StarletteHTTPException):
        # FastAPI's own errors (a body that is not parseable JSON, an unknown route or method) in our shape
        kinds = {
            400: "invalid_request_error",
            401: "authentication_error",
            404: "not_found",
            405: "method_not_allowed",
            413: "request_too_large",
        }
        return _error(e.status_code, str(e.detail), kinds.get(e.status_code, "http_error"), getattr(e, "headers", None))

    @api.exception_handler(RequestValidationError)
    async def _validation(request: Request, e: RequestValidationError):
        parts = [f"{'.'.join(str(x) for x in err['loc'] if x != 'body')}: {err['msg']}" for err in e.errors()]
        return _error(422, "; ".join(parts) or "invalid request", "validation_error")

    return api


def bearer(cfg: ServeConfig, tokens: set[str]):
    required = auth_required(cfg)

    async def check(request: Request) -> None:
        header = request.headers.get("authorization", "")
        if not required and not tokens:
            return
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not any(hmac.compare_digest(token.strip(), t) for t in tokens):
            raise APIError(401, "missing or invalid bearer token", "authentication_error")

    return check


def _grouped(requests: list, key, run) -> list:
    """``run(requests_of_a_group, key)`` once per distinct ``key(request)`` (e.g. method and swap),
    results back in request order: one model call per kind of request in a dynamic batch."""
    groups: dict[Any, list[int]] = {}
    for k, r in enumerate(requests):
        groups.setdefault(key(r), []).append(k)
    out: list = [None] * len(requests)
    for g, idx in groups.items():
        for k, res in zip(idx, run([requests[k] for k in idx], g)):
            out[k] = res
    return out


def make_deployment(cfg: ServeConfig):
    """The Serve deployment class for ``cfg`` (routes and dependencies close over it)."""
    tokens = check_auth_config(cfg)
    api = build_fastapi(cfg)
    auth = Depends(bearer(cfg, tokens))

    @serve.deployment(name="RewardServer")
    @serve.ingress(api)
    class RewardServer:
        def __init__(self, cfg_json: str):
            from ray.serve import metrics

            self.cfg = ServeConfig.model_validate_json(cfg_json)
            self.judge = make_judge(self.cfg.judge)
            self.policy = MediaPolicy(
                self.cfg.judge.media.limits(),
                self.cfg.s3_buckets,
                self.cfg.allow_http_media,
                self.cfg.max_images_per_request,
            )
            self.pending = 0
            self.started = time.time()
            self._judge_many.set_max_batch_size(self.cfg.max_batch_size)
            self._judge_many.set_batch_wait_timeout_s(self.cfg.batch_wait_timeout_s)
            self._chat_many.set_max_batch_size(self.cfg.max_batch_size)
            self._chat_many.set_batch_wait_timeout_s(self.cfg.batch_wait_timeout_s)
            self.m_requests = metrics.Counter(
                "unireward_requests", "requests by route and HTTP status", tag_keys=("route", "status")
            )
            self.m_latency = metrics.Histogram(
                "unireward_request_latency_s",
                "request latency (s)",
                boundaries=[0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
                tag_keys=("route",),
            )
            self.m_batch = metrics.Histogram(
                "unireward_batch_size", "judgments per model batch", boundaries=[1, 2, 4, 8, 16, 32, 64, 128]
            )
            self.m_unparsed = metrics.Counter(
                "unireward_unparsed", "judgments whose text could not be parsed", tag_keys=("task",)
            )
            self.m_items = metrics.Counter(
                "unireward_judgments", "judgments by task and status", tag_keys=("task", "status")
            )
            self.m_group = metrics.Histogram(
                "unireward_group_size",
                "candidates per /v1/rewards group",
                boundaries=[2, 4, 8, 16, 32, 64],
                tag_keys=("scheme",),
            )
            self.m_group_latency = metrics.Histogram(
                "unireward_group_latency_s",
                "/v1/rewards latency per group (s)",
                boundaries=[0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60],
                tag_keys=("scheme",),
            )
            self.m_null = metrics.Counter(
                "unireward_null_rewards", "candidates given a null reward", tag_keys=("scheme",)
            )

        # ---------------------------------------------------------------- plumbing
        async def _admit(self, route: str, work, timeout_s: float | None = None):
            """Admission (429 beyond max_pending), timeout (503) and metrics around ``work``."""
            t0 = time.perf_counter()
            status = 200
            if self.pending >= self.cfg.max_pending:
                self.m_requests.inc(tags={"route": route, "status": "429"})
                raise APIError(
                    429, f"{self.pending} requests in flight on this replica; retry shortly", "rate_limit_error"
                )
            self.pending += 1
            try:
                limit = min(timeout_s or self.cfg.request_timeout_s, self.cfg.request_timeout_s)
                try:
                    return await asyncio.wait_for(work, timeout=limit)
                except asyncio.TimeoutError:
                    raise APIError(503, f"timed out after {limit:g} s", "timeout") from None
            except APIError as e:
                status = e.status
                raise
            except Exception:
                status = 500
                raise
            finally:
                self.pending -= 1
                self.m_requests.inc(tags={"route": route, "status": str(status)})
                self.m_latency.observe(time.perf_counter() - t0, tags={"route": route})

        @serve.batch(max_batch_size=32, batch_wait_timeout_s=0.01)
        async def _judge_many(self, requests: list[tuple[JudgeItem, str, bool]]) -> list[Judgment]:
            self.m_batch.observe(len(requests))
            return await asyncio.to_thread(self._judge_groups, requests)

        def _judge_groups(self, requests: list[tuple[JudgeItem, str, bool]]) -> list[Judgment]:
            out = _grouped(requests, lambda r: r[1:], lambda rs, key: self.judge.judge([r[0] for r in rs], *key))
            for j in out:
                self.m_items.inc(tags={"task": j.task, "status": j.status.value})
                if j.status is Status.UNPARSED:
                    self.m_unparsed.inc(tags={"task": j.task})
            return out

        @serve.batch(max_batch_size=32, batch_wait_timeout_s=0.01)
        async def _chat_many(self, requests: list[tuple[Any, int, float, float, int | None]]) -> list[dict]:
            self.m_batch.observe(len(requests))
            return await asyncio.to_thread(self._chat_groups, requests)

        def _chat_groups(self, requests) -> list[dict]:
            return _grouped(
                requests,
                lambda r: r[2:],
                lambda rs, key: self.judge.chat(
                    [r[0] for r in rs], [r[1] for r in rs], temperature=key[0], top_p=key[1], seed=key[2]
                ),
            )

        # ---------------------------------------------------------------- routes
        @api.post("/v1/judge", response_model=JudgmentOut, response_model_exclude_none=True, dependencies=[auth])
        async def judge_one(self, req: JudgeRequest) -> JudgmentOut:
            async def work():
                item = await asyncio.to_thread(to_item, req, self.policy)
                broken = media_errors(item)
                if broken:
                    raise APIError(400, "media could not be used: " + "; ".join(broken))
                return JudgmentOut.of(await self._judge_many((item, req.method, req.swap)))

            return await self._admit("judge", work(), req.timeout_s)

        @api.post(
            "/v1/judge/batch", response_model=BatchResponse, response_model_exclude_none=True, dependencies=[auth]
        )
        async def judge_batch(self, req: BatchRequest) -> BatchResponse:
            if len(req.items) > self.cfg.max_items_per_request:
                raise APIError(400, f"{len(req.items)} items; at most {self.cfg.max_items_per_request} per request")

            async def work():
                items = await asyncio.to_thread(lambda: [to_item(r, self.policy) for r in req.items])
                js = await asyncio.gather(
                    *(self._judge_many((it, r.method, r.swap)) for it, r in zip(items, req.items))
                )
                return BatchResponse(judgments=[JudgmentOut.of(j) for j in js])

            timeouts = [r.timeout_s for r in req.items if r.timeout_s]
            return await self._admit("judge_batch", work(), min(timeouts) if timeouts else None)

        @api.post("/v1/rewards", response_model=RewardsResponse, response_model_exclude_none=True, dependencies=[auth])
        async def rewards(self, req: RewardsRequest) -> RewardsResponse:
            if len(req.candidates) > self.cfg.max_group:
                raise APIError(400, f"{len(req.candidates)} candidates; at most {self.cfg.max_group} per group")

            async def work():
                t0 = time.perf_counter()
                plan, items = await asyncio.to_thread(to_group, req, self.policy)
                # the whole group enters the dynamic batcher at once (one model call per batch, not per pair)
                js = await asyncio.gather(*(self._judge_many((it, req.method, False)) for it in items))
                if js and all(j.status is Status.INVALID_INPUT for j in js):
                    raise APIError(400, f"the judge cannot judge this group: {js[0].reason}")
                rewards, details = group_rewards(plan, js)
                latency = time.perf_counter() - t0
                tags = {"scheme": req.scheme}
                self.m_group.observe(len(req.candidates), tags=tags)
                self.m_group_latency.observe(latency, tags=tags)
                nulls = sum(r is None for r in rewards)
                if nulls:
                    self.m_null.inc(nulls, tags=tags)
                prov = dict(js[0].provenance) if js else {}
                prov.pop("swap", None)
                details.update(latency_s=round(latency, 4), provenance=prov)
                return RewardsResponse(id=req.id, scheme=req.scheme, rewards=rewards, details=details)

            return await self._admit("rewards", work(), req.timeout_s)

        @api.post(
            "/v1/chat/completions", response_model=ChatResponse, response_model_exclude_none=True, dependencies=[auth]
        )
        async def chat(self, req: ChatRequest, response: Response) -> ChatResponse:
            # max_tokens is an upper bound (OpenAI and vLLM semantics): a request over this endpoint's
            # limit generates at most the limit, and says so, instead of being refused
            asked = req.max_completion_tokens or req.max_tokens
            limit = self.cfg.max_new_tokens_limit
            max_tokens = min(asked, limit) if asked else min(512, limit)
            clamped = bool(asked and asked > limit)
            if clamped:
                response.headers["X-Max-Tokens-Clamped"] = f"{asked}->{limit}"

            async def work():
                conv = await asyncio.to_thread(to_chat, req, self.policy)
                result = await self._chat_many((conv, max_tokens, req.temperature, req.top_p, req.seed))
                return ChatResponse.of(req.model, result, max_tokens_clamped_from=asked if clamped else None)

            return await self._admit("chat", work())

        @api.get("/v1/models", response_model=ModelList, dependencies=[auth])
        async def models(self) -> ModelList:
            return ModelList(
                data=[ModelCard(id=self.cfg.model_name, created=int(self.started), root=self.cfg.judge.model)]
            )

        @api.get("/healthz")
        async def healthz(self) -> dict[str, Any]:
            return {"status": "ok"}

        @api.get("/readyz")
        async def readyz(self) -> JSONResponse:
            if self.pending >= self.cfg.max_pending:
                return _error(503, "saturated: too many requests in flight", "not_ready")
            return JSONResponse(
                {
                    "status": "ready",
                    "model": self.cfg.model_name,
                    "pending": self.pending,
                    "unireward": __version__,
                    "limits": dict(
                        max_items_per_request=self.cfg.max_items_per_request,
                        max_images_per_request=self.cfg.max_images_per_request,
                        max_group=self.cfg.max_group,
                        max_body_mb=self.cfg.max_body_mb,
                        max_pending=self.cfg.max_pending,
                        request_timeout_s=self.cfg.request_timeout_s,
                    ),
                }
            )

    return RewardServer


def build_app(args: dict[str, Any]):
    """Application builder (``import_path: unireward.serve.app:build_app`` in serve/reward.yaml)."""
    cfg = ServeConfig.model_validate(args)
    return make_deployment(cfg).bind(cfg.model_dump_json())

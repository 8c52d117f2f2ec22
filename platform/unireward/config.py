"""Typed configuration (pydantic), YAML loading with clear error messages."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, PositiveInt, ValidationError

from .io import storage
from .io.media import MediaLimits

T = TypeVar("T", bound=BaseModel)


class ConfigError(ValueError):
    """A spec or config file is invalid; the message names each bad field."""


def _path_str(v: Any) -> Any:
    return os.fspath(v) if isinstance(v, os.PathLike) else v


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class MediaConfig(_Strict):
    max_pixels: PositiveInt = Field(1024 * 1024, description="images and video frames are downscaled to at most this")
    max_decode_pixels: PositiveInt = Field(64_000_000, description="refuse to decode larger images (bomb guard)")
    max_bytes: PositiveInt = Field(512 * 2**20, description="largest media file read")
    num_frames: PositiveInt = Field(8, description="video: uniformly spaced frames to sample")
    fps: float | None = Field(None, gt=0, description="video: sample at this rate instead of num_frames")
    max_frames: PositiveInt = Field(32, description="video: never more frames than this")

    def limits(self) -> MediaLimits:
        return MediaLimits(**self.model_dump())


class JudgeConfig(_Strict):
    """How to load and run the judge."""

    model: Annotated[str, BeforeValidator(_path_str)] = Field(..., description="checkpoint folder of the VLM judge")
    family: str = Field("qwen", description="protocol family: the phrasing the checkpoint was trained on")
    protocols: str | None = Field(None, description="YAML file overriding protocol templates")
    method: Literal["logits", "generate"] = "logits"
    swap: bool = Field(False, description="judge pairs in both orders and combine")
    device: str | None = Field(None, description="cuda, cuda:1, cpu; default: cuda if available")
    dtype: Literal["auto", "bfloat16", "float16", "float32"] = "auto"
    attn_implementation: str | None = "sdpa"
    token_budget: PositiveInt = Field(16384, description="padded tokens per batch")
    max_batch_size: PositiveInt = 32
    max_new_tokens: PositiveInt = Field(256, description="generate method: new-token limit")
    media: MediaConfig = MediaConfig()

    def build(self):
        from .judge.model import RewardModel

        return RewardModel(
            self.model, device=self.device, dtype=None if self.dtype == "auto" else self.dtype,
            attn_implementation=self.attn_implementation, family=self.family, protocols=self.protocols,
            token_budget=self.token_budget, max_batch_size=self.max_batch_size, max_new_tokens=self.max_new_tokens,
            media=self.media.limits(),
        )


def format_validation_error(e: ValidationError, source: str) -> str:
    lines = [f"{source}: {e.error_count()} problem(s):"]
    for err in e.errors():
        where = ".".join(str(p) for p in err["loc"]) or "(top level)"
        msg = err["msg"]
        if err["type"] == "extra_forbidden":
            msg = "unknown field (check the spelling)"
        lines.append(f"  - {where}: {msg}" + (f" (got {err['input']!r})" if err["type"] != "missing" and
                                              not isinstance(err.get("input"), dict) else ""))
    return "\n".join(lines)


def parse_config(data: Any, model: type[T], source: str = "<config>") -> T:
    try:
        return model.model_validate(data)
    except ValidationError as e:
        raise ConfigError(format_validation_error(e, source)) from None


def load_yaml(path: str | Path, model: type[T]) -> T:
    """A typed config from a YAML file (local or s3://)."""
    data = storage.read_yaml(path, ConfigError, "config file")
    return parse_config(data, model, os.fspath(path))

"""Typed configuration (pydantic), YAML loading with clear error messages."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar, Union

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PositiveInt,
    TypeAdapter,
    ValidationError,
    model_validator,
)

from .io import media as media_io
from .io import storage
from .io.media import MediaLimits

T = TypeVar("T", bound=BaseModel)
# a source's sampling rule, as the original's data yaml writes it: all, first:N, end:N, random:N or N%
SAMPLING_RULE = re.compile(r"^(all|first:(\d+)|end:(\d+)|random:(\d+)|(\d+(?:\.\d+)?)%)$")


class ConfigError(ValueError):
    """A spec or config file is invalid; the message names each bad field."""


def _path_str(v: Any) -> Any:
    return os.fspath(v) if isinstance(v, os.PathLike) else v


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class MediaConfig(_Strict):
    """How media are read and sized (``unireward.io.media.MediaLimits``; a checkpoint profile may set
    its own for the protocols it covers)."""

    max_pixels: PositiveInt = Field(1024 * 1024, description="images and video frames are downscaled to at most this")
    max_decode_pixels: PositiveInt = Field(64_000_000, description="refuse to decode larger images (bomb guard)")
    max_bytes: PositiveInt = Field(512 * 2**20, description="largest media file read")
    num_frames: PositiveInt = Field(8, description="video: uniformly spaced frames to sample")
    fps: float | None = Field(None, gt=0, description="video: sample at this rate instead of num_frames")
    max_frames: PositiveInt = Field(32, description="video: never more frames than this")
    image_mode: Literal["cap", "qwen", "keep"] = Field(
        "cap", description="cap: downscale to max_pixels; qwen: the official Qwen sizing; keep: the processor's"
    )
    min_pixels: PositiveInt = Field(media_io.QWEN_IMAGE_MIN_PIXELS, description="qwen: smallest image area")
    factor: PositiveInt = Field(media_io.QWEN_FACTOR, description="qwen: sides are multiples of this (Qwen3-VL: 32)")
    exif_transpose: bool = Field(True, description="apply the EXIF orientation")
    jpeg_quality: int | None = Field(
        None,
        ge=1,
        le=100,
        description="send images and frames through a JPEG at this quality first (as a vLLM client does)",
    )
    video_mode: Literal["uniform", "qwen", "frames"] = Field(
        "uniform",
        description="uniform: num_frames evenly spaced; qwen: the official Qwen sampling; frames: "
        "num_frames frames sent as separate images",
    )
    frame_index: Literal["linspace", "floor", "linspace_trunc"] = Field("linspace", description="frames: which frames")
    min_frames: PositiveInt = Field(media_io.QWEN_MIN_FRAMES, description="qwen: fewest frames")
    video_min_pixels: PositiveInt = Field(media_io.QWEN_VIDEO_MIN_PIXELS, description="qwen: smallest frame area")
    video_max_pixels: PositiveInt = Field(media_io.QWEN_VIDEO_MAX_PIXELS, description="qwen: largest frame area")
    video_total_pixels: PositiveInt = Field(media_io.QWEN_VIDEO_TOTAL_PIXELS, description="qwen: the clip's budget")
    frame_size: tuple[PositiveInt, PositiveInt] | None = Field(None, description="frames: resize each to (w, h)")

    def limits(self) -> MediaLimits:
        return MediaLimits(**self.model_dump())


class JudgeConfig(_Strict):
    """How to load and run the judge (or, with ``endpoint``, which served judge to call)."""

    model: Annotated[str, BeforeValidator(_path_str)] = Field(..., description="checkpoint folder of the VLM judge")
    endpoint: str | None = Field(None, description="use a served judge at this URL instead of loading the model")
    token_env: str = Field("UNIREWARD_API_TOKEN", description="environment variable holding the endpoint's token")
    family: str | None = Field(
        None,
        description="protocol family: the phrasing the checkpoint was trained on "
        "(default: the profile's family, else qwen)",
    )
    protocols: str | None = Field(None, description="a checkpoint profile, or a YAML file overriding protocols")
    method: Literal["logits", "generate"] = "logits"
    swap: bool = Field(False, description="judge pairs in both orders and combine")
    device: str | None = Field(None, description="cuda, cuda:1, cpu; default: cuda if available")
    dtype: Literal["auto", "bfloat16", "float16", "float32"] = "auto"
    attn_implementation: str | None = "sdpa"
    token_budget: PositiveInt = Field(16384, description="padded tokens per batch")
    max_batch_size: PositiveInt = 32
    max_new_tokens: PositiveInt = Field(
        256, description="generate method: new-token limit (a profile's protocols set their own)"
    )
    media: MediaConfig = MediaConfig()


class ResourcesConfig(_Strict):
    """The judge actor pool (Ray Data ``ActorPoolStrategy``) and the CPU decode stage."""

    min_actors: PositiveInt = Field(1, description="judge actors kept alive")
    max_actors: PositiveInt = Field(1, description="the pool grows to this many actors under load")
    gpus_per_actor: float = Field(0.0, ge=0, description="GPUs per judge actor (1 on a GPU cluster)")
    cpus_per_actor: float = Field(1.0, gt=0, description="CPUs per judge actor (also its torch threads)")
    custom_resources: dict[str, float] = Field(
        default_factory=dict,
        description="Ray custom resources per judge actor, e.g. {judge_node: 1} to place "
        "actors on nodes that advertise it (a cluster autoscaler adds such nodes)",
    )
    batch_size: PositiveInt = Field(8, description="pool rows (curate) or items (score) per judge call")
    decode_cpus: float = Field(1.0, gt=0, description="CPUs per media-decoding task")
    decode_batch_size: PositiveInt = Field(8, description="rows per media-decoding task")
    decode_memory_mb: PositiveInt = Field(512, description="memory each media-decoding task reserves")

    @model_validator(mode="after")
    def _pool_bounds(self):
        if self.max_actors < self.min_actors:
            raise ValueError(f"max_actors ({self.max_actors}) must be >= min_actors ({self.min_actors})")
        return self


class SelectConfig(_Strict):
    """How a prompt's judgments become a preference pair (see unireward.curate.select)."""

    strategy: Literal["pair_point", "bradley_terry", "pointwise"] = "pair_point"
    margin: float = Field(0.0, ge=0, description="keep a pair only if chosen - rejected score exceeds this")
    on_tie: Literal["drop_pair", "rejudge_swapped", "exclude_prompt"] = "drop_pair"
    on_unparsed: Literal["drop_pair", "rejudge_swapped", "exclude_prompt"] = "rejudge_swapped"
    confirm: bool = Field(True, description="pair_point: judge chosen vs rejected head to head")
    min_confidence: float = Field(0.5, ge=0, le=1, description="keep a pair only if P(chosen better) >= this")
    pairings: PositiveInt = Field(6, description="bradley_terry: random pairs judged per prompt")


class GenerateConfig(_Strict):
    """Optional candidate generation: a VLM answers (understanding tasks) or a diffusers pipeline
    draws (generation tasks) ``n`` candidates per prompt, each with a recorded seed."""

    model: Annotated[str, BeforeValidator(_path_str)] = Field(..., description="policy checkpoint folder")
    n: int = Field(4, ge=2, le=64, description="candidates per prompt")
    seed: int = 0
    temperature: float = Field(0.9, gt=0, description="VLM sampling temperature")
    top_p: float = Field(0.95, gt=0, le=1)
    max_new_tokens: PositiveInt = 64
    steps: PositiveInt = Field(4, description="diffusion: inference steps")
    guidance_scale: float = Field(1.0, ge=0, description="diffusion: classifier-free guidance")
    height: PositiveInt = 64
    width: PositiveInt = 64
    num_frames: PositiveInt = Field(8, description="video generation: frames")
    fps: PositiveInt = 8
    device: str | None = None
    dtype: Literal["auto", "bfloat16", "float16", "float32"] = "auto"
    resources: ResourcesConfig = ResourcesConfig(batch_size=2)


class CurateSpec(_Strict):
    """``kind: curate``: pools (or prompts, with ``generate``) in, preference pairs out."""

    kind: Literal["curate"]
    name: str = Field(..., min_length=1)
    input: str | list[str] = Field(
        ..., description="Parquet file(s) or folder (local or s3://): pool rows, or prompt rows when generate is set"
    )
    output: str = Field(..., description="output folder or s3:// prefix")
    judge: JudgeConfig
    resources: ResourcesConfig = ResourcesConfig()
    select: SelectConfig = SelectConfig()
    generate: GenerateConfig | None = None
    export: list[Literal["trl", "diffusion_dpo", "videodpo"]] | None = Field(
        None, description="exporters to run (default: every one that applies to the tasks present)"
    )
    max_error_fraction: float = Field(0.1, ge=0, le=1, description="fail the job when more inputs than this fail")
    seed: int = 0


class ScoreSpec(_Strict):
    """``kind: score``: judge every pair or point item of a table; no selection."""

    kind: Literal["score"]
    name: str = Field(..., min_length=1)
    input: str | list[str] = Field(..., description="Parquet file(s) or folder of item rows (local or s3://)")
    output: str
    judge: JudgeConfig
    resources: ResourcesConfig = ResourcesConfig()
    max_error_fraction: float = Field(0.1, ge=0, le=1)


BENCHMARK_NAMES = ("genai-bench", "videogen-rewardbench", "vl-rewardbench", "mmrb2", "imagereward")


class EvalOptions(_Strict):
    """Benchmark options (each applies to the benchmarks that have it)."""

    configs: list[Literal["image_generation", "image_edition", "video_generation"]] | None = Field(
        None, description="genai-bench: configs to evaluate (default: every one present)"
    )
    splits: list[Literal["test_v1", "test"]] | None = Field(None, description="genai-bench: splits (default: both)")
    media_root: str | None = Field(
        None, description="genai-bench video_generation: the folder holding the videos the URLs name, by file name"
    )
    csv: str | None = Field(None, description="videogen-rewardbench: the CSV's file name in data")
    dimensions: bool = Field(
        True,
        description="videogen-rewardbench: also score each video's dimensions (VQ, MQ, "
        "TA) with the multi-dimension point protocol",
    )
    images: str | None = Field(
        None, description="imagereward: the images folder (default: test_images beside test.json)"
    )
    limit: PositiveInt | None = Field(None, description="judge only the first N entries (of each file)")


class EvalSpec(_Strict):
    """``kind: eval``: a judge on a public reward benchmark, read in its published layout and scored
    with its official metrics (and bootstrap intervals, swap agreement, calibration)."""

    kind: Literal["eval"]
    name: str = Field(..., min_length=1)
    benchmark: Literal["genai-bench", "videogen-rewardbench", "vl-rewardbench", "mmrb2", "imagereward"]
    data: str = Field(..., description="the benchmark as distributed: a local folder or s3:// prefix")
    output: str = Field(..., description="output folder or s3:// prefix")
    judge: JudgeConfig
    options: EvalOptions = EvalOptions()
    resources: ResourcesConfig = ResourcesConfig()
    upstream: bool = Field(True, description="also write the predictions in the benchmark's own format")
    resamples: int = Field(1000, ge=0, description="bootstrap resamples for the 95% intervals (0: none)")
    max_error_fraction: float = Field(1.0, ge=0, le=1, description="fail the job when more units than this fail")

    @model_validator(mode="before")
    @classmethod
    def _swap_by_default(cls, data: Any) -> Any:
        """Pairs are judged in both orders unless the spec says otherwise: swap agreement (position
        bias) is part of every report, and MMRB2 counts both orders."""
        if isinstance(data, dict) and isinstance(data.get("judge"), dict) and "swap" not in data["judge"]:
            data = dict(data, judge=dict(data["judge"], swap=True))
        return data


class ServeConfig(_Strict):
    """The online reward endpoint (unireward.serve): the `args` of serve/reward.yaml's application."""

    judge: JudgeConfig
    model_name: str = Field("UnifiedReward", description="the name /v1/models and chat completions report")
    host: str = "127.0.0.1"
    port: int = Field(8000, ge=1, le=65535)
    max_batch_size: PositiveInt = Field(32, description="dynamic batching: judgments per batch")
    batch_wait_timeout_s: float = Field(0.01, ge=0, description="dynamic batching: wait this long to fill a batch")
    max_body_mb: float = Field(32, gt=0, description="larger request bodies get 413")
    max_items_per_request: PositiveInt = Field(64, description="items in one /v1/judge/batch request")
    max_images_per_request: PositiveInt = Field(
        32, description="images (video frames count) in one request; on /v1/rewards, in one judged item"
    )
    max_group: int = Field(32, ge=2, description="/v1/rewards: most candidates in one group")
    max_pending: PositiveInt = Field(256, description="requests in flight per replica before 429")
    request_timeout_s: float = Field(60, gt=0, description="a request waiting longer gets 503")
    max_new_tokens_limit: PositiveInt = Field(
        1024, description="chat completions: most new tokens generated (a larger max_tokens is clamped to this)"
    )
    require_auth: bool | None = Field(None, description="bearer tokens required; default: unless bound to loopback")
    tokens_env: str = Field("UNIREWARD_API_TOKENS", description="comma-separated accepted tokens")
    tokens_file: str | None = Field(None, description="file with one accepted token per line")
    s3_buckets: list[str] = Field(default_factory=list, description="buckets s3:// media may come from")
    allow_http_media: bool = Field(False, description="fetch http(s) media (public addresses only)")


class TrainSource(_Strict):
    """One source of judge training records."""

    path: str = Field(
        ...,
        description="item Parquet file or folder (format items), or a JSON/JSONL file of "
        "conversation records (format conversation); local or s3://",
    )
    format: Literal["items", "conversation"] = "items"
    task: str | None = Field(None, description="conversation records: the task they teach (items carry theirs)")
    sampling: str = Field("all", description="all, first:N, end:N, random:N or N% (as in the original)")
    name: str | None = Field(None, description="a label for reports (default: the file name)")

    @model_validator(mode="after")
    def _check(self):
        m = SAMPLING_RULE.match(self.sampling.strip())
        if not m:
            raise ValueError(f"sampling {self.sampling!r}: expected all, first:N, end:N, random:N or N%")
        if m.group(5) and float(m.group(5)) > 100:
            raise ValueError(f"sampling {self.sampling!r}: a share cannot exceed 100%")
        if self.format == "conversation" and not self.task:
            raise ValueError(
                "a conversation source needs 'task' (image_generation, image_understanding, "
                "video_generation or video_understanding)"
            )
        return self


class TrainDataConfig(_Strict):
    train: list[TrainSource] = Field(..., min_length=1)
    eval: list[TrainSource] = Field(
        default_factory=list, description="held-out item sources (default: a split of train, by prompt)"
    )
    eval_fraction: float = Field(0.2, ge=0, lt=1, description="share of train prompts held out when eval is empty")
    weights: dict[str, float] | None = Field(
        None, description="per-task mixing weights; with total, the epoch is drawn in these proportions"
    )
    total: PositiveInt | None = Field(None, description="examples per epoch when mixing (default: all of them)")
    both_orders: bool = Field(
        True, description="train each pair in both orders (labels swapped): no position bias can be learnt"
    )
    points: bool = Field(True, description="also train pointwise scores (labels from gt_scores)")
    think: bool = Field(
        False,
        description="pairs reason before their verdict: <think>Image 1: ... Image 2: ..."
        "</think> from the items' rationales (evaluate with eval_method: generate)",
    )
    max_eval_items: PositiveInt = Field(2000, description="cap on held-out items judged per evaluation")

    @model_validator(mode="after")
    def _check(self):
        if self.weights is not None and not any(w > 0 for w in self.weights.values()):
            raise ValueError("weights need at least one task with weight > 0")
        return self


class LoraConfig(_Strict):
    r: PositiveInt = 16
    alpha: PositiveInt = 32
    dropout: float = Field(0.05, ge=0, lt=1)
    target_modules: list[str] = Field(
        default_factory=lambda: ["q_proj", "k_proj", "v_proj", "o_proj"],
        description="module names adapted (the language model's attention by default)",
    )


class DeepSpeedOptions(_Strict):
    zero_stage: Literal[0, 2, 3] = Field(2, description="0 = plain data parallel (DDP-like), 2 or 3 = ZeRO")
    offload: bool = Field(False, description="optimizer state (and ZeRO-3 parameters) in CPU memory")


class TrainingConfig(_Strict):
    epochs: PositiveInt = 1
    max_steps: PositiveInt | None = Field(None, description="stop after this many optimizer steps")
    batch_size: PositiveInt = Field(4, description="examples per worker per micro-step")
    grad_accum: PositiveInt = Field(1, description="micro-steps per optimizer step")
    lr: float = Field(1e-5, gt=0)
    weight_decay: float = Field(0.0, ge=0)
    warmup_ratio: float = Field(0.03, ge=0, lt=1)
    schedule: Literal["cosine", "linear", "constant"] = "cosine"
    max_grad_norm: float = Field(1.0, gt=0)
    precision: Literal["auto", "bf16", "fp32"] = Field("auto", description="auto: bf16 on GPU, fp32 on CPU")
    gradient_checkpointing: bool = False
    freeze_vision: bool = Field(False, description="freeze the vision tower (its blocks and patch embedding)")
    freeze_projector: bool = Field(False, description="freeze the vision-to-language projector (the merger)")
    lora: LoraConfig | None = None
    deepspeed: DeepSpeedOptions = DeepSpeedOptions()
    eval_every: PositiveInt | None = Field(
        None, description="evaluate and checkpoint every N steps (default: once per epoch)"
    )
    eval_before: bool = Field(True, description="evaluate the starting judge first (the 'before' numbers)")
    eval_method: Literal["logits", "generate"] = Field(
        "logits",
        description="how held-out items are judged: the logit method, or generation (a judge that reasons first)",
    )
    keep: PositiveInt = Field(2, description="checkpoints kept, best first by metric")
    metric: str = Field(
        "eval/mean_acc",
        description="the metric that ranks checkpoints (higher is better; a tie goes to the lower eval/loss, then the later step)",
    )
    seed: int = 0


class TrainResources(_Strict):
    workers: PositiveInt = Field(2, description="Ray Train workers (one per GPU on a GPU cluster)")
    use_gpu: bool = False
    cpus_per_worker: float = Field(1.0, gt=0)
    max_failures: int = Field(
        0, ge=-1, description="worker failures survived by restarting from the last checkpoint (-1: unlimited)"
    )


class TrainRewardSpec(_Strict):
    """``kind: train_reward``: supervised fine-tuning of the judge on preference records of all four
    tasks with Ray Train + DeepSpeed; per-task evaluation; checkpoints; an HF export."""

    kind: Literal["train_reward"]
    name: str = Field(..., min_length=1, pattern=r"^[A-Za-z0-9._-]+$")
    model: Annotated[str, BeforeValidator(_path_str)] = Field(..., description="the judge to start from (HF folder)")
    output: str = Field(
        ...,
        description="storage folder or s3:// prefix: the run (checkpoints, logs) is "
        "<output>/<name>, the exported judge <output>/<name>/final",
    )
    family: str = Field("qwen", description="protocol family the judge is taught and read with")
    data: TrainDataConfig
    training: TrainingConfig = TrainingConfig()
    resources: TrainResources = TrainResources()
    media: MediaConfig = MediaConfig()


class DpoDataConfig(_Strict):
    train: list[str] = Field(
        ...,
        min_length=1,
        description="exported preference Parquet files (local or s3://): "
        "diffusion_dpo (caption, jpg_0, jpg_1, label_0) for "
        "images, videodpo (caption, chosen, rejected) for videos",
    )
    eval: list[str] = Field(default_factory=list, description="held-out pairs (default: a split of train)")
    eval_fraction: float = Field(0.1, ge=0, lt=1, description="share of train captions held out when eval is empty")
    max_eval_pairs: PositiveInt = 256


class DpoSpec(_Strict):
    """``kind: dpo``: DPO of a VLM (TRL's DPOTrainer; images, and videos as frame sequences), or
    Diffusion-DPO of a diffusers text-to-image (UNet2D: SD1.5 / SDXL layouts) or text-to-video
    (UNet3D) pipeline, on curated preference pairs, with Ray Train + DeepSpeed."""

    kind: Literal["dpo"]
    name: str = Field(..., min_length=1, pattern=r"^[A-Za-z0-9._-]+$")
    policy: Literal["vlm", "diffusion_image", "diffusion_video"]
    model: Annotated[str, BeforeValidator(_path_str)] = Field(
        ..., description="the policy: an HF VLM folder (vlm) or a diffusers pipeline folder"
    )
    output: str = Field(..., description="the run is <output>/<name>, the aligned pipeline <output>/<name>/final")
    data: DpoDataConfig
    beta: float = Field(
        5000.0,
        gt=0,
        description="DPO beta (default: 5000 for diffusion as in the Diffusion-DPO and "
        "VideoDPO reference runs, 0.1 for vlm)",
    )
    loss_type: Literal["sigmoid", "ipo", "hinge"] = Field("sigmoid", description="vlm: the DPO loss")
    resolution: PositiveInt | None = Field(None, description="pixels per side (default: the pipeline's sample size)")
    num_frames: PositiveInt = Field(8, description="video: frames sampled per clip")
    eval_seed: int = Field(1234, description="timesteps and noise of the held-out evaluation (fixed across steps)")
    training: TrainingConfig = TrainingConfig(lr=1e-8, metric="eval/implicit_acc")
    resources: TrainResources = TrainResources()
    media: MediaConfig = MediaConfig()

    @model_validator(mode="before")
    @classmethod
    def _dpo_defaults(cls, data: Any) -> Any:
        """The reference runs' defaults where the spec leaves them out: learning rate (1e-8 for
        Diffusion-DPO, 5e-7 for VLM DPO), beta (0.1 for VLM DPO), and checkpoints ranked by held-out
        implicit reward accuracy."""
        if not isinstance(data, dict):
            return data
        vlm = data.get("policy") == "vlm"
        training = data.get("training") if isinstance(data.get("training"), dict) else {}
        data = dict(data, training={"lr": 5e-7 if vlm else 1e-8, "metric": "eval/implicit_acc", **training})
        if vlm and "beta" not in data:
            data["beta"] = 0.1
        return data


Spec = Annotated[Union[CurateSpec, ScoreSpec, EvalSpec, TrainRewardSpec, DpoSpec], Field(discriminator="kind")]
SPEC_KINDS = ("curate", "score", "eval", "train_reward", "dpo")


def format_validation_error(e: ValidationError, source: str, strip_tag: bool = False) -> str:
    lines = [f"{source}: {e.error_count()} problem(s):"]
    for err in e.errors():
        loc = err["loc"][1:] if strip_tag and err["loc"] and err["loc"][0] in SPEC_KINDS else err["loc"]
        where = ".".join(str(p) for p in loc) or "(top level)"
        msg = err["msg"]
        if err["type"] == "extra_forbidden":
            msg = "unknown field (check the spelling)"
        lines.append(
            f"  - {where}: {msg}"
            + (
                f" (got {err['input']!r})"
                if err["type"] != "missing" and not isinstance(err.get("input"), dict)
                else ""
            )
        )
    return "\n".join(lines)


def parse_config(data: Any, model: type[T], source: str = "<config>") -> T:
    try:
        return model.model_validate(data)
    except ValidationError as e:
        raise ConfigError(format_validation_error(e, source)) from None


def parse_spec(data: Any, source: str = "<spec>") -> CurateSpec | ScoreSpec | EvalSpec | TrainRewardSpec | DpoSpec:
    """A job spec from a mapping; ``kind`` picks the spec type."""
    if not isinstance(data, dict) or data.get("kind") not in SPEC_KINDS:
        kind = data.get("kind") if isinstance(data, dict) else None
        raise ConfigError(f"{source}: 'kind' must be one of {list(SPEC_KINDS)}, got {kind!r}")
    try:
        return TypeAdapter(Spec).validate_python(data)
    except ValidationError as e:
        raise ConfigError(format_validation_error(e, source, strip_tag=True)) from None


def load_spec(path: str | Path) -> CurateSpec | ScoreSpec | EvalSpec | TrainRewardSpec | DpoSpec:
    """A job spec from a YAML file (local or s3://)."""
    return parse_spec(storage.read_yaml(path, ConfigError, "spec file"), os.fspath(path))


def load_yaml(path: str | Path, model: type[T]) -> T:
    """A typed config from a YAML file (local or s3://)."""
    data = storage.read_yaml(path, ConfigError, "config file")
    return parse_config(data, model, os.fspath(path))

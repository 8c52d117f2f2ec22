"""The one media loader: images (Pillow) and video frames (decord).

Sources: a local path (or ``file://``), an ``s3://`` URI, raw bytes, a base64 ``data:`` URI, or an
already-decoded PIL image (for video: a list of PIL frames). Fetching ``http(s)://`` URLs is
deliberately unsupported here (no server-side request forgery from data rows).

Every failure raises :class:`MediaError` with a short ``code`` and a human reason; the judge turns
it into an ``invalid_input`` judgment, so one bad file never stops a job. What the native video
decoders (FFmpeg, decord) print about a file is captured, added to the reason, and logged once per
file at warning level, never written to the terminal around our output.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import io
import logging
import math
import os
import re
import sys
import tempfile
import threading
import warnings
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from . import storage

DEFAULT_MAX_BYTES = 512 * 2**20  # never read more than this for one media file
DEFAULT_MAX_DECODE_PIXELS = 64_000_000  # decompression-bomb guard: refuse to decode larger images
DEFAULT_MAX_PIXELS = 1024 * 1024  # images are downscaled (aspect kept) to at most this many pixels

log = logging.getLogger(__name__)


class MediaError(Exception):
    """A media input could not be used. ``code`` is one of: not_found, empty, too_large,
    decode_failed, unsupported, invalid_uri, io_error."""

    def __init__(self, code: str, reason: str):
        super().__init__(f"{code}: {reason}")
        self.code = code
        self.reason = reason

    def __reduce__(self):  # picklable (decoded media travel between Ray workers)
        return (MediaError, (self.code, self.reason))


# qwen-vl-utils' bounds (the official Qwen2/2.5-VL preprocessing, 0.0.9 and later): see qwen_image_size
QWEN_FACTOR = 28  # patch size (14) x merge size (2); Qwen3-VL: 32
QWEN_IMAGE_MIN_PIXELS = 4 * 28 * 28
QWEN_IMAGE_MAX_PIXELS = 16384 * 28 * 28
QWEN_VIDEO_MIN_PIXELS = 128 * 28 * 28
QWEN_VIDEO_MAX_PIXELS = 768 * 28 * 28
QWEN_VIDEO_TOTAL_PIXELS = int(128000 * 28 * 28 * 0.9)
QWEN_FPS, QWEN_MIN_FRAMES, QWEN_MAX_FRAMES = 2.0, 4, 768
IMAGE_MODES = ("cap", "qwen", "keep")
VIDEO_MODES = ("uniform", "qwen", "frames")
FRAME_INDEX = ("linspace", "floor", "linspace_trunc")


@dataclass(frozen=True)
class MediaLimits:
    """How media are read, checked and sized before the processor sees them.

    Images (``image_mode``): ``cap`` (default) downscales to at most ``max_pixels`` (aspect kept);
    ``qwen`` sizes them as the official Qwen preprocessing does (sides multiples of ``factor``, area
    kept within [``min_pixels``, ``max_pixels``]); ``keep`` leaves the size to the processor.

    Videos (``video_mode``): ``uniform`` (default) takes ``num_frames`` evenly spaced frames (or one
    every 1/``fps`` s, at most ``max_frames``), each capped at ``max_pixels``; ``qwen`` samples as
    the official Qwen preprocessing does (``fps`` frames per second, an even count within
    [``min_frames``, ``max_frames``] and never more than the clip has, every frame sized within
    [``video_min_pixels``, ``video_max_pixels``] and the whole clip within ``video_total_pixels``);
    ``frames`` takes ``num_frames`` frames by ``frame_index`` and sends them as separate images (as
    the vLLM clients of UnifiedReward-2.0 and -Think do).
    """

    max_pixels: int = DEFAULT_MAX_PIXELS  # per image or video frame, after decoding (downscale)
    max_decode_pixels: int = DEFAULT_MAX_DECODE_PIXELS  # refuse larger images before decoding
    max_bytes: int = DEFAULT_MAX_BYTES
    num_frames: int = 8  # video: uniformly spaced frames ...
    fps: float | None = None  # ... or frames at this rate (overrides num_frames)
    max_frames: int = 32  # video: never more frames than this
    image_mode: str = "cap"
    min_pixels: int = QWEN_IMAGE_MIN_PIXELS  # qwen: images are never smaller than this
    factor: int = QWEN_FACTOR  # qwen: image and frame sides are multiples of this
    exif_transpose: bool = True  # apply the EXIF orientation (the Qwen preprocessing does not)
    jpeg_quality: int | None = None  # re-encode images and frames as JPEG at this quality first (a vLLM client)
    video_mode: str = "uniform"
    frame_index: str = "linspace"  # frames: linspace (rounded) | floor: int(i*T/N), distinct | linspace_trunc
    min_frames: int = QWEN_MIN_FRAMES  # qwen
    video_min_pixels: int = QWEN_VIDEO_MIN_PIXELS  # qwen
    video_max_pixels: int = QWEN_VIDEO_MAX_PIXELS  # qwen
    video_total_pixels: int = QWEN_VIDEO_TOTAL_PIXELS  # qwen
    frame_size: tuple[int, int] | None = None  # resize every frame to (width, height) (the LLaVA scripts: 512x512)

    def __post_init__(self):
        if self.image_mode not in IMAGE_MODES:
            raise ValueError(f"image_mode {self.image_mode!r}: expected one of {IMAGE_MODES}")
        if self.video_mode not in VIDEO_MODES:
            raise ValueError(f"video_mode {self.video_mode!r}: expected one of {VIDEO_MODES}")
        if self.frame_index not in FRAME_INDEX:
            raise ValueError(f"frame_index {self.frame_index!r}: expected one of {FRAME_INDEX}")
        if self.frame_size is not None and not isinstance(self.frame_size, tuple):
            object.__setattr__(self, "frame_size", tuple(self.frame_size))


@dataclass
class Video:
    """Decoded video frames with the timing the VLM processors need."""

    frames: list[Image.Image]
    fps: float  # rate of the sampled frames (frames per second of the clip they cover)
    source_fps: float | None = None
    duration_s: float | None = None
    indices: list[int] = field(default_factory=list)
    total_frames: int | None = None  # frames in the source video
    as_images: bool = False  # sent to the model as separate images (one image part per frame)
    pixels: Any = None  # video_mode qwen: the frames as the Qwen preprocessing hands them on (float TCHW, 0-255)

    def processor_input(self) -> Any:
        """What the processor gets for this video: the Qwen preprocessing's float frames, or the frames."""
        return self.pixels if self.pixels is not None else self.frames

    def metadata(self) -> dict:
        """What HF video processors take as ``video_metadata`` (timing of the sampled frames)."""
        if self.source_fps and self.total_frames:
            return dict(
                total_num_frames=self.total_frames,
                fps=self.source_fps,
                frames_indices=list(self.indices),
                duration=self.duration_s,
                width=self.frames[0].width,
                height=self.frames[0].height,
            )
        return dict(
            total_num_frames=len(self.frames),
            fps=self.fps,
            frames_indices=list(range(len(self.frames))),
            duration=len(self.frames) / self.fps,
            width=self.frames[0].width,
            height=self.frames[0].height,
        )


def describe(src: Any) -> str:
    """A short, log-safe description of a media source."""
    if isinstance(src, (bytes, bytearray, memoryview)):
        return f"<{len(src)} bytes>"
    if isinstance(src, Image.Image):
        return f"<PIL {src.mode} {src.size[0]}x{src.size[1]}>"
    if isinstance(src, Video):
        return f"<video {len(src.frames)} frames>"
    if isinstance(src, (list, tuple)):
        return f"<{len(src)} frames>"
    s = os.fspath(src) if isinstance(src, (str, os.PathLike)) else repr(src)
    if s.startswith("data:"):
        return s[: s.find(",") + 1] + f"...<{len(s)} chars>"
    return s if len(s) <= 200 else s[:197] + "..."


def read_source(src: Any, max_bytes: int = DEFAULT_MAX_BYTES) -> bytes:
    """The raw bytes of a path / s3:// / data: URI / bytes source."""
    if isinstance(src, (bytes, bytearray, memoryview)):
        data = bytes(src)
    elif isinstance(src, (str, os.PathLike)):
        s = os.fspath(src)
        if s.startswith("data:"):
            data = _decode_data_uri(s)
        elif s.startswith(("http://", "https://")):
            raise MediaError("unsupported", f"fetching http(s) media is disabled: {describe(s)}")
        elif "://" in s and not s.startswith(("s3://", "file://")):
            raise MediaError("invalid_uri", f"unsupported URI scheme: {describe(s)}")
        else:
            try:
                data = storage.read_bytes(s, max_bytes=max_bytes)
            except FileNotFoundError:
                raise MediaError("not_found", f"no such file: {describe(s)}") from None
            except IsADirectoryError:
                raise MediaError("not_found", f"is a directory, not a file: {describe(s)}") from None
            except ValueError as e:
                raise MediaError("too_large", str(e)) from None
            except OSError as e:
                raise MediaError("io_error", f"cannot read {describe(s)}: {e}") from None
    else:
        raise MediaError("unsupported", f"unsupported media source type {type(src).__name__}")
    if not data:
        raise MediaError("empty", f"zero bytes: {describe(src)}")
    if len(data) > max_bytes:
        raise MediaError("too_large", f"{describe(src)} is {len(data)} bytes, over the limit of {max_bytes}")
    return data


def _decode_data_uri(uri: str) -> bytes:
    head, sep, payload = uri.partition(",")
    if not sep:
        raise MediaError("invalid_uri", "data URI without a ',' separator")
    if not head.endswith(";base64"):
        raise MediaError("invalid_uri", "only base64 data URIs are supported (data:<mime>;base64,...)")
    try:
        return base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError) as e:
        raise MediaError("invalid_uri", f"bad base64 in data URI: {e}") from None


# ---------------------------------------------------------------------------------------- images
def load_image(src: Any, limits: MediaLimits = MediaLimits()) -> Image.Image:
    """Loads one image as RGB: EXIF orientation applied, alpha composited on white, 16-bit and CMYK
    converted, downscaled (aspect kept) to at most ``limits.max_pixels`` pixels."""
    if isinstance(src, Image.Image):
        img = src
        _check_decode_size(img, limits, describe(src))
    else:
        data = read_source(src, limits.max_bytes)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("error", Image.DecompressionBombWarning)
                img = Image.open(io.BytesIO(data))
                _check_decode_size(img, limits, describe(src))
                img.load()
        except MediaError:
            raise
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
            raise MediaError("too_large", f"{describe(src)}: {e}") from None
        except UnidentifiedImageError:
            raise MediaError("decode_failed", f"not a recognised image format: {describe(src)}") from None
        except (OSError, SyntaxError, ValueError, EOFError) as e:
            raise MediaError("decode_failed", f"cannot decode image {describe(src)}: {e}") from None
    try:
        if limits.exif_transpose:
            img = ImageOps.exif_transpose(img)
        img = to_rgb(img)
    except MediaError:
        raise
    except Exception as e:
        raise MediaError("decode_failed", f"cannot convert {describe(src)} to RGB: {e}") from None
    if limits.jpeg_quality:
        img = jpeg_round_trip(img, limits.jpeg_quality)
    return size_image(img, limits, describe(src))


def size_image(img: Image.Image, limits: MediaLimits, what: str = "image") -> Image.Image:
    """An image sized by ``limits.image_mode`` (see MediaLimits)."""
    if limits.image_mode == "keep":
        return img
    if limits.image_mode == "qwen":
        h, w = qwen_image_size(img.height, img.width, limits.factor, limits.min_pixels, limits.max_pixels, what)
        return img.resize((w, h), Image.Resampling.BICUBIC)  # PIL returns a copy when the size is unchanged
    return cap_pixels(img, limits.max_pixels)


def jpeg_round_trip(img: Image.Image, quality: int) -> Image.Image:
    """The image as a JPEG at ``quality`` decodes it (what a client that sends JPEG data URIs sends)."""
    out = Image.open(io.BytesIO(encode_image(img, "JPEG", quality=quality)))
    out.load()
    return out.convert("RGB")


def _round_by(n: float, f: int) -> int:
    return round(n / f) * f  # Python's round: half to even, as the Qwen preprocessing


def qwen_image_size(
    height: int, width: int, factor: int, min_pixels: int, max_pixels: int, what: str = "image"
) -> tuple[int, int]:
    """(height, width) as the official Qwen preprocessing sizes an image or frame (qwen-vl-utils'
    ``smart_resize``): both sides rounded to multiples of ``factor`` (at least ``factor``), then, if
    the area is over ``max_pixels`` or under ``min_pixels``, scaled (aspect kept) and floored or
    ceiled to multiples of ``factor`` to get inside."""
    if max(height, width) / min(height, width) > 200:
        raise MediaError("unsupported", f"{what} is {width}x{height}: an aspect ratio over 200 is not supported")
    h_bar = max(factor, _round_by(height, factor))
    w_bar = max(factor, _round_by(width, factor))
    if h_bar * w_bar > max_pixels:
        beta = math.sqrt(height * width / max_pixels)
        h_bar = math.floor(height / beta / factor) * factor
        w_bar = math.floor(width / beta / factor) * factor
    elif h_bar * w_bar < min_pixels:
        beta = math.sqrt(min_pixels / (height * width))
        h_bar = math.ceil(height * beta / factor) * factor
        w_bar = math.ceil(width * beta / factor) * factor
    if h_bar <= 0 or w_bar <= 0:
        raise MediaError(
            "unsupported", f"{what} is {width}x{height}: too thin to fit {max_pixels} pixels in multiples of {factor}"
        )
    return h_bar, w_bar


def _check_decode_size(img: Image.Image, limits: MediaLimits, what: str) -> None:
    w, h = img.size
    if w <= 0 or h <= 0:
        raise MediaError("decode_failed", f"{what} has an empty size {w}x{h}")
    if w * h > limits.max_decode_pixels:
        raise MediaError(
            "too_large", f"{what} is {w}x{h} = {w * h} pixels, over the decode limit of {limits.max_decode_pixels}"
        )


def to_rgb(img: Image.Image) -> Image.Image:
    """Converts any Pillow mode to 8-bit RGB; transparency is composited on white."""
    mode = img.mode
    if mode == "RGB":
        return img
    if mode in ("I;16", "I;16L", "I;16B", "I;16N", "I", "F"):
        arr = np.asarray(img, dtype=np.float64)
        hi = 65535.0 if mode.startswith("I;16") else (1.0 if mode == "F" and arr.max(initial=0) <= 1.0 else None)
        if hi is None:
            hi = 65535.0 if arr.max(initial=0) > 255 else 255.0
        arr8 = np.clip(arr / hi * 255.0 + 0.5, 0, 255).astype(np.uint8)
        return Image.fromarray(arr8, mode="L").convert("RGB")
    if mode == "P" and "transparency" in img.info or mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return img.convert("RGB")


def cap_pixels(img: Image.Image, max_pixels: int) -> Image.Image:
    w, h = img.size
    if max_pixels and w * h > max_pixels:
        scale = math.sqrt(max_pixels / (w * h))
        size = (max(1, int(w * scale)), max(1, int(h * scale)))
        img = img.resize(size, Image.Resampling.BICUBIC)
    return img


def encode_image(img: Image.Image, fmt: str = "PNG", **save: Any) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format=fmt, **save)
    return buf.getvalue()


def to_data_uri(data: bytes, mime: str) -> str:
    return f"data:{mime};base64,{base64.b64encode(data).decode()}"


# ---------------------------------------------------------------------------------------- videos
def sample_indices(n_frames: int, native_fps: float | None, limits: MediaLimits) -> list[int]:
    """Frame indices: ``num_frames`` uniformly spaced (first and last included), or one every
    1/``fps`` seconds; never more than ``max_frames`` (then spread uniformly)."""
    if n_frames <= 0:
        return []
    if limits.fps and native_fps and native_fps > 0:
        step = max(native_fps / limits.fps, 1.0)
        idx = np.arange(0, n_frames, step)
    else:
        idx = np.linspace(0, n_frames - 1, num=limits.num_frames)
    if len(idx) > limits.max_frames:
        idx = np.linspace(idx[0], idx[-1], num=limits.max_frames)
    return [int(round(i)) for i in idx]


def qwen_frame_count(
    total: int,
    video_fps: float,
    fps: float = QWEN_FPS,
    min_frames: int = QWEN_MIN_FRAMES,
    max_frames: int = QWEN_MAX_FRAMES,
) -> int:
    """How many frames the official Qwen preprocessing samples from a clip (qwen-vl-utils'
    ``smart_nframes``, 0.0.9 and later): ``fps`` frames per second of the clip, at least
    ``min_frames`` and at most ``max_frames`` (and never more than the clip has), rounded down to an
    even count. 0 when the clip cannot give 2 frames."""
    lo = math.ceil(min_frames / 2) * 2
    hi = math.floor(min(max_frames, total) / 2) * 2
    n = total / video_fps * fps
    n = math.floor(min(min(max(n, lo), hi), total) / 2) * 2
    return n if 2 <= n <= total else 0


def frame_indices(total: int, n: int, rule: str) -> list[int]:
    """``n`` frame indices of a ``total``-frame clip: ``linspace`` (evenly spaced from the first to the
    last, rounded half to even, as torch rounds), ``floor`` (int(i*total/n), each frame once: the
    UnifiedReward-2.0 clients) or ``linspace_trunc`` (evenly spaced, truncated, repeats kept: the
    UnifiedReward-Think clients)."""
    if total <= 0 or n <= 0:
        return []
    if rule == "floor":
        return sorted({int(i * total / n) for i in range(n)})
    if rule == "linspace_trunc":
        return [int(x) for x in np.linspace(0, total - 1, n)]
    import torch

    return [int(x) for x in torch.linspace(0, total - 1, n).round().long()]


# ---------------------------------------------------------------------------------------- native decoder output
_native_lock = threading.Lock()
_logged: OrderedDict[str, None] = OrderedDict()  # files whose decoder messages were logged (bounded)
_NATIVE_PREFIX = re.compile(r"^\[[^\]]*\]\s*(?:[^\s:]+\.cc:\d+:\s*)?")  # "[15:24:36] .../video_reader.cc:83: "


@contextlib.contextmanager
def native_stderr() -> Iterator[list[str]]:
    """Captures what native code writes to the process's standard error while the block runs (the
    lines FFmpeg and decord print about a damaged file); yields a list that holds them afterwards.
    Captures are serialised: the process's stderr is redirected only while one block runs."""
    lines: list[str] = []
    with _native_lock:
        sys.stderr.flush()
        saved = os.dup(2)
        with tempfile.TemporaryFile() as tmp:
            os.dup2(tmp.fileno(), 2)
            try:
                yield lines
            finally:
                os.dup2(saved, 2)
                os.close(saved)
                tmp.seek(0)
                text = tmp.read().decode("utf-8", errors="replace")
                lines.extend(_native_line(ln) for ln in text.splitlines() if ln.strip())


def _native_line(line: str) -> str:
    """A decoder's line without its timestamp and source location, and without the echo of the input
    decord puts in "ERROR opening: <input>, <why>" (for in-memory data that echo is the data itself)."""
    line = _NATIVE_PREFIX.sub("", line).strip()
    if line.startswith("ERROR opening:") and ", " in line:
        line = "cannot open: " + line.rsplit(", ", 1)[1]
    return line if len(line) <= 300 else line[:297] + "..."


def log_decoder_messages(what: str, lines: Sequence[str]) -> None:
    """Logs what a native decoder said about a file, once per file (per process) at warning level."""
    if not lines or what in _logged:
        return
    _logged[what] = None
    if len(_logged) > 4096:
        _logged.popitem(last=False)
    log.warning("%s: the video decoder reported: %s", what, "; ".join(dict.fromkeys(lines)))


def load_video(src: Any, limits: MediaLimits = MediaLimits()) -> Video:
    """Decodes the sampled frames of a video (RGB), sampled and sized by ``limits.video_mode`` (see
    MediaLimits)."""
    if isinstance(src, Video):
        return src
    if isinstance(src, (list, tuple)):  # already-decoded frames
        if not src:
            raise MediaError("empty", "a video given as frames has no frames")
        frames = [load_image(f, replace(limits, jpeg_quality=None)) for f in src]
        idx = sample_indices(len(frames), None, limits)
        fps = limits.fps or 1.0
        return _finish_frames(Video([frames[i] for i in idx], fps=fps, indices=idx), limits)
    data = read_source(src, limits.max_bytes)
    what = describe(src)
    try:
        import decord  # imported lazily: it is a heavy native module
    except ImportError as e:  # pragma: no cover - decord is a dependency
        raise MediaError("unsupported", f"decord is not installed: {e}") from None
    error: MediaError | None = None
    with native_stderr() as said:
        try:
            vr = decord.VideoReader(io.BytesIO(data), ctx=decord.cpu(0), num_threads=1)
            n = len(vr)
            if n <= 0:
                raise MediaError("empty", f"{what} has no frames")
            native_fps = float(vr.get_avg_fps() or 0) or None
            h, w = vr[0].shape[:2]
            if w * h > limits.max_decode_pixels:
                raise MediaError(
                    "too_large", f"{what} frames are {w}x{h}, over the decode limit of {limits.max_decode_pixels}"
                )
            idx = _video_indices(n, native_fps, limits, what)
            arr = vr.get_batch(idx).asnumpy()
        except MediaError as e:
            error = e
        except Exception as e:  # decord raises DECORDError/RuntimeError with terse messages
            msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            error = MediaError("decode_failed", f"cannot decode video {what}: {msg}")
    log_decoder_messages(what, said)
    if error is not None:
        if said and error.code == "decode_failed":  # the decoder's own words say why
            error = MediaError(error.code, f"{error.reason} ({'; '.join(dict.fromkeys(said))})")
        raise error
    if arr.ndim != 4 or arr.shape[0] != len(idx):
        raise MediaError("decode_failed", f"cannot decode video {what}: got frames of shape {arr.shape}")
    duration = n / native_fps if native_fps else None
    pixels = None
    if limits.video_mode == "qwen":
        frames, pixels = _qwen_frames(arr, limits, what)
        fps = len(idx) / n * (native_fps or QWEN_FPS)  # the sampled rate: second_per_grid_ts = 2 / fps
    else:
        frames = [Image.fromarray(f).convert("RGB") for f in arr]
        if limits.video_mode == "uniform":
            frames = [cap_pixels(f, limits.max_pixels) for f in frames]
        span = (idx[-1] - idx[0] + 1) / native_fps if native_fps and len(idx) > 1 else None
        fps = len(idx) / span if span else (native_fps or 1.0)
    video = Video(
        frames, fps=float(fps), source_fps=native_fps, duration_s=duration, indices=idx, total_frames=n, pixels=pixels
    )
    return _finish_frames(video, limits)


def _video_indices(n: int, native_fps: float | None, limits: MediaLimits, what: str) -> list[int]:
    if limits.video_mode == "qwen":
        count = qwen_frame_count(
            n, native_fps or QWEN_FPS, limits.fps or QWEN_FPS, limits.min_frames, limits.max_frames
        )
        if not count:
            raise MediaError("unsupported", f"{what} has {n} frame(s); the Qwen sampling needs at least 2")
        return frame_indices(n, count, "linspace")
    if limits.video_mode == "frames":
        return frame_indices(n, limits.num_frames, limits.frame_index)
    return sample_indices(n, native_fps, limits)


def _qwen_frames(arr: np.ndarray, limits: MediaLimits, what: str) -> tuple[list[Image.Image], Any]:
    """Frames sized as the official Qwen preprocessing sizes a video: one size for all frames, the
    per-frame budget shared out of the clip's total, resized bicubic with antialiasing on uint8,
    handed on as float (TCHW, 0-255). Returns (the frames as images, that float tensor)."""
    import torch
    from torchvision.transforms import InterpolationMode
    from torchvision.transforms.functional import resize

    n, height, width = arr.shape[0], arr.shape[1], arr.shape[2]
    max_pixels = max(
        min(limits.video_max_pixels, limits.video_total_pixels / n * 2), int(limits.video_min_pixels * 1.05)
    )
    h, w = qwen_image_size(height, width, limits.factor, limits.video_min_pixels, max_pixels, what)
    video = torch.from_numpy(arr).permute(0, 3, 1, 2)  # TCHW uint8
    video = resize(video, [h, w], interpolation=InterpolationMode.BICUBIC, antialias=True)
    return [Image.fromarray(f) for f in video.permute(0, 2, 3, 1).numpy()], video.float()


def _finish_frames(video: Video, limits: MediaLimits) -> Video:
    """Frames sent as separate images (``video_mode: frames``): resized to ``frame_size`` and through
    the JPEG round trip, if the limits ask for them."""
    if limits.video_mode != "frames":
        return video
    frames = video.frames
    if limits.frame_size:
        frames = [f.resize(tuple(limits.frame_size), Image.Resampling.BICUBIC) for f in frames]
    if limits.jpeg_quality:
        frames = [jpeg_round_trip(f, limits.jpeg_quality) for f in frames]
    return replace(video, frames=frames, as_images=True)


def load_media(src: Any, kind: str, limits: MediaLimits = MediaLimits()) -> Image.Image | Video:
    """``kind``: 'image' or 'video'. A MediaError given as the source (media that an earlier stage
    failed to decode) is raised again, with its own reason."""
    if isinstance(src, MediaError):
        raise src
    if kind == "image":
        return load_image(src, limits)
    if kind == "video":
        return load_video(src, limits)
    raise ValueError(f"unknown media kind {kind!r}")


def encode_video(frames: Sequence[np.ndarray | Image.Image], fps: float = 8.0) -> bytes:
    """Encodes RGB frames as an H.264 mp4 (PyAV), deterministically (one encoder thread)."""
    import av  # imported lazily: only writers of video need it

    arrs = [np.asarray(f.convert("RGB") if isinstance(f, Image.Image) else f, dtype=np.uint8) for f in frames]
    if not arrs:
        raise ValueError("no frames to encode")
    h, w = arrs[0].shape[:2]
    buf = io.BytesIO()
    with av.open(buf, mode="w", format="mp4") as out:
        stream = out.add_stream("libx264", rate=int(round(fps)))
        stream.width, stream.height = w, h
        stream.pix_fmt = "yuv420p"
        stream.thread_count = 1
        stream.options = {"crf": "18", "preset": "veryfast", "threads": "1"}
        for a in arrs:
            for packet in stream.encode(av.VideoFrame.from_ndarray(a, format="rgb24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return buf.getvalue()

"""unireward.io.media: load_image / load_video on real media made in the test (Pillow, numpy, PyAV)."""

from __future__ import annotations

import base64
import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from unireward.io import media, storage
from unireward.io.media import MediaError, MediaLimits, load_image, load_video
from unireward.synth import world

EXIF_ORIENTATION = 0x0112
VIDEO_FRAMES = 12
VIDEO_FPS = 8
GREY_STEP = 20  # frame i of the test video is a flat grey of i * GREY_STEP


# ------------------------------------------------------------------------------------- helpers
def encode(img: Image.Image, fmt: str, **kwargs) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format=fmt, **kwargs)
    return buf.getvalue()


def gradient_rgb(w: int = 64, h: int = 48) -> Image.Image:
    """A deterministic RGB test image: red ramp left to right, green ramp top to bottom, blue 128."""
    x = np.linspace(0, 255, w, dtype=np.float64)[None, :].repeat(h, 0)
    y = np.linspace(0, 255, h, dtype=np.float64)[:, None].repeat(w, 1)
    arr = np.stack([x, y, np.full((h, w), 128.0)], axis=-1).round().astype(np.uint8)
    return Image.fromarray(arr)


def assert_close_rgb(img: Image.Image, xy: tuple[int, int], expected: tuple[int, int, int], tol: int) -> None:
    got = img.getpixel(xy)
    assert all(abs(int(g) - e) <= tol for g, e in zip(got, expected)), f"pixel {xy}: {got} != {expected} (+-{tol})"


def assert_code(code: str, src, limits: MediaLimits = MediaLimits(), loader=load_image) -> MediaError:
    with pytest.raises(MediaError) as info:
        loader(src, limits)
    assert info.value.code == code, f"expected {code!r}, got {info.value.code!r}: {info.value.reason}"
    assert info.value.reason  # a human reason is always given
    return info.value


@pytest.fixture(scope="module")
def grey_frames() -> list[np.ndarray]:
    return [np.full((48, 64, 3), i * GREY_STEP, dtype=np.uint8) for i in range(VIDEO_FRAMES)]


@pytest.fixture(scope="module")
def mp4_bytes(grey_frames) -> bytes:
    data = media.encode_video(grey_frames, fps=VIDEO_FPS)
    assert data[4:8] == b"ftyp"
    return data


def frame_grey_level(frame: Image.Image) -> float:
    return float(np.asarray(frame, dtype=np.float64).mean())


# -------------------------------------------------------------------------------- images: sources
def test_load_png_from_path(tmp_path: Path):
    src = gradient_rgb()
    path = tmp_path / "img.png"
    path.write_bytes(encode(src, "PNG"))
    for arg in (path, str(path), f"file://{path}"):
        out = load_image(arg)
        assert out.mode == "RGB"
        assert out.size == (64, 48)
        assert np.array_equal(np.asarray(out), np.asarray(src))  # PNG is lossless


def test_load_jpeg_from_path(tmp_path: Path):
    src = gradient_rgb()
    path = tmp_path / "img.jpg"
    path.write_bytes(encode(src, "JPEG", quality=95))
    out = load_image(path)
    assert out.mode == "RGB"
    assert out.size == (64, 48)
    diff = np.abs(np.asarray(out, dtype=np.int16) - np.asarray(src, dtype=np.int16))
    assert diff.mean() < 4


def test_load_from_bytes_bytearray_and_memoryview():
    data = encode(gradient_rgb(), "PNG")
    for arg in (data, bytearray(data), memoryview(data)):
        out = load_image(arg)
        assert out.size == (64, 48)
        assert out.getpixel((0, 0)) == (0, 0, 128)
        assert out.getpixel((63, 47)) == (255, 255, 128)


def test_load_from_base64_data_uri():
    data = encode(gradient_rgb(), "PNG")
    uri = media.to_data_uri(data, "image/png")
    assert uri.startswith("data:image/png;base64,")
    assert base64.b64decode(uri.split(",", 1)[1]) == data
    assert media.read_source(uri) == data
    out = load_image(uri)
    assert out.size == (64, 48)
    assert out.getpixel((63, 0)) == (255, 0, 128)


def test_load_from_pil_image():
    src = gradient_rgb()
    out = load_image(src)
    assert out.mode == "RGB"
    assert out.size == (64, 48)
    assert np.array_equal(np.asarray(out), np.asarray(src))
    # a PIL image in another mode is converted, not rejected
    grey = load_image(Image.new("L", (5, 3), 77))
    assert grey.mode == "RGB" and grey.size == (5, 3) and grey.getpixel((4, 2)) == (77, 77, 77)


def test_encode_image_round_trip():
    src = gradient_rgb(10, 6)
    data = media.encode_image(src)  # PNG by default
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    assert np.array_equal(np.asarray(load_image(data)), np.asarray(src))


def test_scene_from_synthetic_world_loads_unchanged():
    groups = [world.Group("circle", "red", 2, "left"), world.Group("square", "blue", 1, "right")]
    img = world.render_scene(groups)
    out = load_image(world.png(img))
    assert out.size == (world.IMAGE_SIZE, world.IMAGE_SIZE)
    assert np.array_equal(np.asarray(out), np.asarray(img))
    assert out.getpixel((0, 0)) == (235, 235, 235)  # background


# ---------------------------------------------------------------------------- images: conversions
def test_exif_orientation_is_applied():
    src = Image.new("RGB", (40, 20), (200, 20, 20))
    src.paste((20, 20, 200), (0, 0, 10, 20))  # blue strip on the left edge
    exif = Image.Exif()
    exif[EXIF_ORIENTATION] = 6  # "rotate 90 CW to display"
    data = encode(src, "JPEG", quality=95, exif=exif.tobytes())
    assert Image.open(io.BytesIO(data)).size == (40, 20)
    assert Image.open(io.BytesIO(data)).getexif()[EXIF_ORIENTATION] == 6

    out = load_image(data)
    assert out.size == (20, 40)  # width and height swapped
    # rotating 90 degrees clockwise moves the left strip to the top
    assert_close_rgb(out, (10, 2), (20, 20, 200), tol=30)
    assert_close_rgb(out, (10, 37), (200, 20, 20), tol=30)


def test_exif_orientation_is_applied_to_pil_input():
    src = Image.open(io.BytesIO(encode(Image.new("RGB", (30, 10), (0, 128, 0)), "JPEG", exif=_orientation_exif(8))))
    assert load_image(src).size == (10, 30)


def _orientation_exif(value: int) -> bytes:
    exif = Image.Exif()
    exif[EXIF_ORIENTATION] = value
    return exif.tobytes()


def test_cmyk_jpeg_becomes_rgb():
    cmyk = Image.new("CMYK", (16, 8), (0, 255, 255, 0))  # pure red in CMYK
    data = encode(cmyk, "JPEG", quality=95)
    assert Image.open(io.BytesIO(data)).mode == "CMYK"
    out = load_image(data)
    assert out.mode == "RGB"
    assert out.size == (16, 8)
    assert_close_rgb(out, (8, 4), (255, 0, 0), tol=12)


def test_16bit_greyscale_png_scaled_to_8bit():
    arr = np.array([[0, 32768, 65535, 1000]], dtype=np.uint16).repeat(2, axis=0)
    src16 = Image.fromarray(arr)
    assert src16.mode == "I;16"
    data = encode(src16, "PNG")
    assert Image.open(io.BytesIO(data)).mode.startswith("I")
    for src in (data, src16):
        out = load_image(src)
        assert out.mode == "RGB"
        assert out.size == (4, 2)
        px = np.asarray(out)[0]
        assert tuple(px[0]) == (0, 0, 0)
        assert tuple(px[2]) == (255, 255, 255)
        assert abs(int(px[1][0]) - 128) <= 1
        assert px[1][0] == px[1][1] == px[1][2]
        assert int(px[3][0]) == 4  # 1000 / 65535 * 255 ~ 3.9


def test_rgba_transparency_composited_on_white():
    arr = np.zeros((10, 20, 4), dtype=np.uint8)
    arr[:, :10] = (255, 0, 0, 255)  # opaque red
    arr[:, 10:] = (0, 0, 0, 0)  # fully transparent (black underneath)
    rgba = Image.fromarray(arr)
    assert rgba.mode == "RGBA"
    for src in (rgba, encode(rgba, "PNG")):
        out = load_image(src)
        assert out.mode == "RGB"
        assert out.getpixel((2, 5)) == (255, 0, 0)
        assert out.getpixel((15, 5)) == (255, 255, 255)


def test_half_transparent_pixel_is_blended_with_white():
    rgba = Image.new("RGBA", (2, 2), (0, 0, 0, 128))
    out = load_image(encode(rgba, "PNG"))
    r, g, b = out.getpixel((0, 0))
    assert r == g == b and 125 <= r <= 129


def test_palette_image_with_transparency():
    pal = Image.new("P", (20, 10), 0)
    pal.putpalette([0, 0, 0, 0, 200, 0] + [0] * (256 * 3 - 6))
    pal.paste(1, (10, 0, 20, 10))  # right half: palette index 1 (green); left half index 0
    for fmt in ("PNG", "GIF"):
        data = encode(pal, fmt, transparency=0)  # index 0 (black) is transparent
        reopened = Image.open(io.BytesIO(data))
        assert reopened.mode == "P" and reopened.info.get("transparency") == 0
        out = load_image(data)
        assert out.mode == "RGB"
        assert out.getpixel((3, 5)) == (255, 255, 255), fmt  # transparent black -> white, not black
        assert out.getpixel((15, 5)) == (0, 200, 0), fmt


def test_max_pixels_downscales_keeping_aspect():
    src = gradient_rgb(2000, 1000)
    limits = MediaLimits(max_pixels=100_000)
    for arg in (src, encode(src, "PNG")):
        out = load_image(arg, limits)
        w, h = out.size
        assert w * h <= 100_000
        assert w * h >= 95_000  # downscaled to the cap, not far below it
        assert w / h == pytest.approx(2.0, rel=0.02)
        assert out.mode == "RGB"


def test_small_image_is_not_upscaled():
    out = load_image(gradient_rgb(30, 20), MediaLimits(max_pixels=100_000))
    assert out.size == (30, 20)


# --------------------------------------------------------------------------------- images: errors
def test_corrupt_jpeg_after_valid_header_is_decode_failed():
    good = encode(gradient_rgb(), "JPEG")
    assert good[:4] == b"\xff\xd8\xff\xe0"  # SOI + APP0 (JFIF)
    garbage = np.random.default_rng(1234).bytes(2000)
    assert_code("decode_failed", good[:20] + garbage)  # JFIF header, then garbage markers
    sos = good.find(b"\xff\xda")
    assert sos > 0
    assert_code("decode_failed", good[: sos + 14] + garbage)  # all headers up to the scan, then garbage


def test_truncated_png_is_decode_failed():
    data = encode(gradient_rgb(), "PNG")
    assert_code("decode_failed", data[: len(data) // 2])
    assert_code("decode_failed", data[:60])


def test_zero_bytes_is_empty(tmp_path: Path):
    assert_code("empty", b"")
    path = tmp_path / "empty.png"
    path.write_bytes(b"")
    assert_code("empty", path)
    assert_code("empty", "data:image/png;base64,")


def test_missing_file_is_not_found(tmp_path: Path):
    err = assert_code("not_found", tmp_path / "missing.png")
    assert "missing.png" in err.reason
    assert_code("not_found", f"file://{tmp_path}/missing.png")


def test_directory_is_not_found(tmp_path: Path):
    assert_code("not_found", tmp_path)


def test_random_garbage_is_decode_failed():
    assert_code("decode_failed", np.random.default_rng(7).bytes(1000))
    assert_code("decode_failed", b"definitely not an image")


def test_image_over_max_decode_pixels_is_too_large(tmp_path: Path):
    big = Image.new("L", (5000, 5000), 7)
    data = encode(big, "PNG")
    assert Image.open(io.BytesIO(data)).size == (5000, 5000)
    limits = MediaLimits(max_decode_pixels=1_000_000)
    err = assert_code("too_large", data, limits)
    assert "5000x5000" in err.reason
    path = tmp_path / "big.png"
    path.write_bytes(data)
    assert_code("too_large", path, limits)
    assert_code("too_large", big, limits)  # an already-decoded PIL image is checked too
    # the same image under the default limits decodes (and is downscaled)
    out = load_image(data, MediaLimits(max_pixels=10_000))
    assert out.size == (100, 100) and out.getpixel((50, 50)) == (7, 7, 7)


def test_file_over_max_bytes_is_too_large(tmp_path: Path):
    data = encode(gradient_rgb(), "PNG")
    path = tmp_path / "img.png"
    path.write_bytes(data)
    limits = MediaLimits(max_bytes=len(data) - 1)
    assert_code("too_large", path, limits)
    assert_code("too_large", data, limits)
    assert_code("too_large", media.to_data_uri(data, "image/png"), limits)
    assert load_image(path, MediaLimits(max_bytes=len(data))).size == (64, 48)  # exactly at the limit


@pytest.mark.parametrize("url", ["http://example.com/a.png", "https://example.com/a.png"])
def test_http_url_is_unsupported(url: str):
    assert_code("unsupported", url)


@pytest.mark.parametrize(
    "uri",
    [
        "data:image/png,iVBORw0KGgo=",  # no ;base64 marker
        "data:image/png;base64",  # no ',' separator
        "data:image/png;base64,@@@not-base64@@@",
        "data:image/png;base64,abc",  # bad padding
    ],
)
def test_bad_data_uri_is_invalid_uri(uri: str):
    assert_code("invalid_uri", uri)


@pytest.mark.parametrize("uri", ["ftp://example.com/a.png", "gs://bucket/a.png"])
def test_unknown_scheme_is_invalid_uri(uri: str):
    assert_code("invalid_uri", uri)


def test_unsupported_source_type():
    assert_code("unsupported", 12345)
    assert_code("unsupported", {"path": "x.png"})


def test_describe_is_short_and_log_safe():
    uri = media.to_data_uri(b"x" * 3000, "image/png")
    d = media.describe(uri)
    assert d.startswith("data:image/png;base64,") and len(d) < 60
    assert media.describe(b"abc") == "<3 bytes>"
    assert media.describe(Image.new("RGB", (3, 2))) == "<PIL RGB 3x2>"


# ------------------------------------------------------------------------------------ images: s3
@pytest.mark.slow
def test_load_image_from_s3(s3_env: str):
    src = gradient_rgb()
    uri = storage.join(s3_env, "images", "img.png")
    storage.write_bytes(uri, encode(src, "PNG"))
    out = load_image(uri)
    assert out.size == (64, 48)
    assert np.array_equal(np.asarray(out), np.asarray(src))


@pytest.mark.slow
def test_missing_s3_key_is_not_found(s3_env: str):
    err = assert_code("not_found", storage.join(s3_env, "nope.png"))
    assert "nope.png" in err.reason


# ---------------------------------------------------------------------------------------- videos
def test_sample_indices():
    assert media.sample_indices(12, 8.0, MediaLimits()) == [0, 2, 3, 5, 6, 8, 9, 11]
    assert media.sample_indices(12, 8.0, MediaLimits(fps=4)) == [0, 2, 4, 6, 8, 10]
    assert media.sample_indices(100, 10.0, MediaLimits(fps=10, max_frames=5)) == [0, 25, 50, 74, 99]
    assert media.sample_indices(0, 8.0, MediaLimits()) == []


def test_load_video_default_uniform_frames(mp4_bytes: bytes):
    video = load_video(mp4_bytes)
    assert len(video.frames) == 8
    assert video.indices == [0, 2, 3, 5, 6, 8, 9, 11]
    assert video.indices[0] == 0 and video.indices[-1] == VIDEO_FRAMES - 1
    assert video.total_frames == VIDEO_FRAMES
    assert video.source_fps == pytest.approx(VIDEO_FPS)
    assert video.duration_s == pytest.approx(VIDEO_FRAMES / VIDEO_FPS)
    assert video.fps == pytest.approx(8 / 1.5)  # 8 frames over the whole 1.5 s clip
    for frame, i in zip(video.frames, video.indices):
        assert isinstance(frame, Image.Image)
        assert frame.mode == "RGB"
        assert frame.size == (64, 48)
        assert frame_grey_level(frame) == pytest.approx(i * GREY_STEP, abs=6)  # the right frame was decoded

    meta = video.metadata()
    assert meta["total_num_frames"] == VIDEO_FRAMES
    assert meta["frames_indices"] == video.indices
    assert meta["fps"] == pytest.approx(VIDEO_FPS)
    assert meta["duration"] == pytest.approx(1.5)
    assert (meta["width"], meta["height"]) == (64, 48)


def test_load_video_from_path_and_data_uri(tmp_path: Path, mp4_bytes: bytes):
    path = tmp_path / "clip.mp4"
    path.write_bytes(mp4_bytes)
    for src in (path, str(path), media.to_data_uri(mp4_bytes, "video/mp4")):
        video = load_video(src)
        assert video.indices == [0, 2, 3, 5, 6, 8, 9, 11]
        assert video.total_frames == VIDEO_FRAMES


def test_load_video_caps_frame_pixels(mp4_bytes: bytes):
    video = load_video(mp4_bytes, MediaLimits(max_pixels=768))
    for frame in video.frames:
        w, h = frame.size
        assert w * h <= 768
        assert w / h == pytest.approx(64 / 48, rel=0.1)
        assert frame.mode == "RGB"
    meta = video.metadata()
    assert (meta["width"], meta["height"]) == video.frames[0].size


def test_load_video_fps_sampling(mp4_bytes: bytes):
    video = load_video(mp4_bytes, MediaLimits(fps=4))
    assert video.indices == [0, 2, 4, 6, 8, 10]  # one frame every 2 source frames
    assert len(video.frames) == 6
    assert 4.0 <= video.fps < 5.0
    for frame, i in zip(video.frames, video.indices):
        assert frame_grey_level(frame) == pytest.approx(i * GREY_STEP, abs=6)
    meta = video.metadata()
    assert meta["frames_indices"] == [0, 2, 4, 6, 8, 10]
    assert meta["total_num_frames"] == VIDEO_FRAMES
    # fps above the native rate never repeats frames
    assert load_video(mp4_bytes, MediaLimits(fps=30)).indices == list(range(VIDEO_FRAMES))


def test_load_video_max_frames_cap(mp4_bytes: bytes):
    video = load_video(mp4_bytes, MediaLimits(num_frames=12, max_frames=5))
    assert len(video.frames) == 5
    assert video.indices == [0, 3, 6, 8, 11]
    video = load_video(mp4_bytes, MediaLimits(fps=8, max_frames=4))
    assert video.indices == [0, 4, 7, 11]


def test_load_video_from_synthetic_world_motion():
    motion = world.Motion("square", "red", "right", "quickly")
    frames = world.render_motion(motion, 0.0, np.random.default_rng(0))
    video = load_video(world.mp4(frames))
    assert video.total_frames == world.VIDEO_FRAMES
    assert video.frames[0].size == (world.VIDEO_SIZE, world.VIDEO_SIZE)

    def red_centroid_x(img: Image.Image) -> float:
        a = np.asarray(img, dtype=np.int16)
        mask = (a[..., 0] > 150) & (a[..., 1] < 110) & (a[..., 2] < 110)
        assert mask.sum() > 20
        return float(np.nonzero(mask)[1].mean())

    xs = [red_centroid_x(f) for f in video.frames]
    assert xs == sorted(xs) and xs[-1] - xs[0] > 40  # the square moves right


def test_truncated_mp4_is_decode_failed(mp4_bytes: bytes):
    assert_code("decode_failed", mp4_bytes[: len(mp4_bytes) // 3], loader=load_video)


def test_zero_byte_video_is_empty(tmp_path: Path):
    assert_code("empty", b"", loader=load_video)
    path = tmp_path / "empty.mp4"
    path.write_bytes(b"")
    assert_code("empty", path, loader=load_video)


def test_garbage_video_is_decode_failed():
    assert_code("decode_failed", np.random.default_rng(3).bytes(4096), loader=load_video)
    assert_code("decode_failed", b"garbage" * 100, loader=load_video)


def test_missing_video_file_is_not_found(tmp_path: Path):
    assert_code("not_found", tmp_path / "missing.mp4", loader=load_video)


def test_video_as_list_of_pil_frames():
    frames = [Image.new("RGB", (40, 20), (i * 10, 0, 0)) for i in range(12)]
    video = load_video(frames)
    assert len(video.frames) == 8
    assert video.indices == [0, 2, 3, 5, 6, 8, 9, 11]
    assert [f.getpixel((0, 0)) for f in video.frames] == [(i * 10, 0, 0) for i in video.indices]
    assert video.fps == 1.0
    meta = video.metadata()
    assert meta["total_num_frames"] == 8
    assert meta["frames_indices"] == list(range(8))
    assert (meta["width"], meta["height"]) == (40, 20)

    # frames are converted and capped like images
    rgba = [Image.new("RGBA", (200, 100), (0, 0, 255, 0)) for _ in range(3)]
    video = load_video(tuple(rgba), MediaLimits(max_pixels=5_000, num_frames=3))
    assert len(video.frames) == 3
    for f in video.frames:
        assert f.mode == "RGB" and f.size[0] * f.size[1] <= 5_000
        assert f.getpixel((0, 0)) == (255, 255, 255)


def test_video_as_empty_list_is_empty():
    assert_code("empty", [], loader=load_video)
    assert_code("empty", (), loader=load_video)


def test_load_video_passes_a_video_through(mp4_bytes: bytes):
    video = load_video(mp4_bytes)
    assert load_video(video) is video
    assert media.load_media(video, "video") is video
    assert media.load_media(gradient_rgb(), "image").size == (64, 48)
    with pytest.raises(ValueError, match="unknown media kind"):
        media.load_media(b"x", "audio")


# ------------------------------------------------------------------------------------ the official sampling
# Hand-computed from the rules (qwen-vl-utils 0.0.9+, the vLLM clients of UnifiedReward-2.0 and -Think).
@pytest.mark.parametrize(
    "hw, expected",
    [
        ((512, 512), (504, 504)),  # rounded to the nearest multiple of 28
        ((50, 50), (56, 56)),  # under 4*28*28 = 3136 px: scaled up, ceiled
        ((30, 200), (28, 196)),
        ((720, 1280), (728, 1288)),  # about 1 MP: kept, rounded
        ((4000, 6000), (2912, 4368)),  # 24 MP, over 16384*28*28: scaled down, floored
    ],
)
def test_qwen_image_size(hw, expected):
    assert media.qwen_image_size(*hw, 28, 4 * 28 * 28, 16384 * 28 * 28) == expected


def test_qwen_image_size_refuses_extreme_aspect_ratios():
    with pytest.raises(MediaError, match="aspect ratio over 200"):
        media.qwen_image_size(10, 2100, 28, 3136, 16384 * 784)


@pytest.mark.parametrize(
    "total, fps, expected",
    [
        (120, 24, 10),  # 5 s at 2 fps
        (3, 30, 2),  # fewer frames than the minimum of 4: what the clip has, rounded down to even
        (13, 8, 4),  # an odd count: at least 4
        (105, 30, 6),  # 7 frames at 2 fps, rounded down to even
        (60, 60, 4),  # a high rate: 1 s gives 2, raised to the minimum 4
        (2000, 30, 132),
        (1, 30, 0),  # one frame cannot give two
    ],
)
def test_qwen_frame_count(total, fps, expected):
    assert media.qwen_frame_count(total, fps) == expected


def test_frame_indices_by_rule():
    assert media.frame_indices(120, 10, "linspace") == [0, 13, 26, 40, 53, 66, 79, 93, 106, 119]
    assert media.frame_indices(49, 12, "linspace") == [0, 4, 9, 13, 17, 22, 26, 31, 35, 39, 44, 48]  # half to even
    assert media.frame_indices(120, 8, "floor") == [0, 15, 30, 45, 60, 75, 90, 105]
    assert media.frame_indices(5, 8, "floor") == [0, 1, 2, 3, 4]  # int(i*5/8) repeats: each frame once
    assert media.frame_indices(5, 8, "linspace_trunc") == [0, 0, 1, 1, 2, 2, 3, 4]  # repeats kept
    assert media.frame_indices(120, 8, "linspace_trunc") == [0, 17, 34, 51, 68, 85, 102, 119]


def test_load_video_the_qwen_way(tmp_path: Path):
    frames = [np.full((720, 1280, 3), (5 * k) % 256, dtype=np.uint8) for k in range(48)]  # 2 s at 24 fps, 1280x720
    data = media.encode_video(frames, fps=24)
    v = load_video(data, MediaLimits(video_mode="qwen", max_frames=768))
    assert v.indices == [0, 16, 31, 47] and len(v.frames) == 4
    assert v.frames[0].size == (1008, 560)  # the per-frame cap 768*28*28, floored to multiples of 28
    assert v.pixels.shape == (4, 3, 560, 1008) and v.pixels.dtype.is_floating_point
    assert v.metadata()["frames_indices"] == v.indices and v.fps == pytest.approx(4 / 48 * 24)
    assert not v.as_images


def test_load_video_as_frames_for_a_vllm_client(mp4_bytes: bytes):
    v = load_video(
        mp4_bytes,
        MediaLimits(video_mode="frames", num_frames=4, frame_index="floor", jpeg_quality=95, frame_size=(40, 30)),
    )
    assert v.as_images and len(v.frames) == 4 and v.frames[0].size == (40, 30)
    assert v.indices == [int(i * v.total_frames / 4) for i in range(4)]
    plain = load_video(mp4_bytes, MediaLimits(video_mode="frames", num_frames=4, frame_index="floor"))
    assert plain.indices == v.indices and plain.frames[0].size != (40, 30)


def test_jpeg_round_trip_and_the_keep_and_qwen_image_modes():
    img = Image.fromarray(np.random.default_rng(0).integers(0, 255, (50, 70, 3), dtype=np.uint8))
    j = media.jpeg_round_trip(img, 95)
    assert j.size == img.size and j.mode == "RGB" and np.asarray(j).tobytes() != np.asarray(img).tobytes()
    assert load_image(img, MediaLimits(image_mode="keep", max_pixels=100)).size == (70, 50)
    assert load_image(img, MediaLimits(image_mode="qwen")).size == (56, 56)  # 70/28 = 2.5 rounds half to even: 56
    assert (
        load_image(img, MediaLimits(max_pixels=100)).size[0] * load_image(img, MediaLimits(max_pixels=100)).size[1]
        <= 100
    )

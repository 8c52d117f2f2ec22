"""Work a judge does once per distinct visual, however many items of a batch show it.

A group of G candidates judged pairwise puts each image in 2(G-1) items. Two reuses make that cost
about one item's worth per image instead:

- ``ImageFeatureCache``: an image is run through the processor's image processor once per judge
  call (keyed by the decoded image object), its pixel tensors reused by every item that shows it.
  Checked once per processor against a plain call; a processor whose outputs cannot be put
  together image by image (padded patch grids, say) is simply not cached.
- ``deduplicate_vision(model)``: the vision tower of Qwen2-VL, Qwen2.5-VL and Qwen3-VL encodes each
  distinct visual of a batch once; identical ones (found by a fingerprint, confirmed by exact
  equality) share the features. Attention in these towers never crosses visuals, so the features
  are the ones a full run gives.
"""

from __future__ import annotations

import copy
import functools
import threading
from typing import Any

import torch


class ImageFeatureCache:
    """Per-image preprocessing for ``processor(text=..., images=...)`` calls."""

    def __init__(self, processor: Any):
        self.processor = processor
        self.checked: bool | None = None  # None: not yet compared with a plain call
        self._local = threading.local()  # one shallow copy of the processor per thread

    def _own(self) -> Any:
        """This thread's copy of the processor (its own ``image_processor`` attribute to swap)."""
        proc = getattr(self._local, "processor", None)
        if proc is None:
            proc = self._local.processor = copy.copy(self.processor)
        return proc

    def __call__(self, cache: dict | None, text: list[str], images: list[Any], **kwargs: Any) -> dict[str, Any]:
        """``processor(text=text, images=images, **kwargs)``, each image preprocessed at most once
        per ``cache`` (a dict that lives for one judge call)."""
        if cache is None or not images or self.checked is False:
            return dict(self.processor(text=text, images=images, **kwargs))
        inner = self.processor.image_processor

        def per_image(imgs, **kw):
            parts = []
            for im in imgs:
                key = ("image-features", id(im), repr(sorted(kw.items())))
                if key not in cache:
                    cache[key] = (im, inner([im], **kw))  # the image is kept alive: its id stays unique
                parts.append(cache[key][1])
            return type(parts[0])(
                {k: torch.cat([p[k] for p in parts]) for k in parts[0].keys()}, tensor_type=kw.get("return_tensors")
            )

        proc = self._own()
        proc.image_processor = _Delegate(inner, per_image)  # this thread's copy only
        try:
            out = dict(proc(text=text, images=images, **kwargs))
        finally:
            proc.image_processor = inner
        if self.checked is None:
            plain = dict(self.processor(text=text, images=images, **kwargs))
            self.checked = plain.keys() == out.keys() and all(_same(plain[k], out[k]) for k in plain)
            if not self.checked:
                return plain
        return out


class _Delegate:
    """The image processor with its ``__call__`` replaced; every other attribute is the original's."""

    def __init__(self, inner: Any, call: Any):
        self._inner, self._call = inner, call

    def __call__(self, images, **kwargs):
        flat = images if isinstance(images, (list, tuple)) else [images]
        if any(isinstance(x, (list, tuple)) for x in flat):  # nested batches: not ours to split
            return self._inner(images, **kwargs)
        return self._call(list(flat), **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor):
        return a.shape == b.shape and a.dtype == b.dtype and bool(torch.equal(a, b))
    return a == b


# ---------------------------------------------------------------------------------- vision tower
def duplicates(pixel_values: torch.Tensor, grid_thw: torch.Tensor) -> list[int]:
    """For each visual (a ``grid_thw`` row; its patches consecutive in ``pixel_values``), the index
    of the first identical visual. Fingerprints (two weighted sums per visual, computed on the
    tensors' device in one pass) propose matches; exact equality confirms them."""
    sizes = grid_thw.prod(-1)
    n = len(sizes)
    device = pixel_values.device
    sizes_d = sizes.to(device)
    owner = torch.repeat_interleave(torch.arange(n, device=device), sizes_d)
    starts = torch.cumsum(sizes_d, 0) - sizes_d
    local = torch.arange(len(owner), device=device) - starts[owner]  # a patch's place within its visual
    flat = pixel_values.float()
    w = torch.linspace(0.5, 1.5, flat.shape[-1], device=device)
    rows = torch.stack([flat.sum(-1), (flat * w).sum(-1) * (local.remainder(97) + 1)], -1)
    fp = torch.zeros(n, 2, device=device, dtype=rows.dtype).index_add_(0, owner, rows)
    keys = [(tuple(g), tuple(f)) for g, f in zip(grid_thw.tolist(), fp.tolist())]
    chunks = torch.split(pixel_values, sizes.tolist())
    first: dict[Any, list[int]] = {}
    rep = []
    for k, key in enumerate(keys):
        for cand in first.get(key, []):
            if torch.equal(chunks[cand], chunks[k]):
                rep.append(cand)
                break
        else:
            first.setdefault(key, []).append(k)
            rep.append(k)
    return rep


def _deduplicating(original):
    import inspect

    # (pixel_values, image_grid_thw) or (pixel_values_videos, video_grid_thw), by position or name
    pixels_name, grid_name = list(inspect.signature(original).parameters)[:2]

    @functools.wraps(original)
    def features(*args, **kwargs):
        pixel_values = args[0] if args else kwargs.pop(pixels_name, None)
        grid_thw = args[1] if len(args) > 1 else kwargs.pop(grid_name, None)
        rest = args[2:]
        if pixel_values is None or grid_thw is None or len(grid_thw) < 2 or rest:
            return original(pixel_values, grid_thw, *rest, **kwargs)
        rep = duplicates(pixel_values, grid_thw)
        distinct = sorted(set(rep))
        if len(distinct) == len(rep):
            return original(pixel_values, grid_thw, **kwargs)
        chunks = torch.split(pixel_values, grid_thw.prod(-1).tolist())
        out = original(torch.cat([chunks[k] for k in distinct]), grid_thw[distinct], **kwargs)
        at = {k: i for i, k in enumerate(distinct)}
        out.pooler_output = tuple(out.pooler_output[at[r]] for r in rep)
        if getattr(out, "deepstack_features", None) is not None:
            out.deepstack_features = [tuple(f[at[r]] for r in rep) for f in out.deepstack_features]
        out.last_hidden_state = None  # the distinct visuals' patch states only; the language model reads pooler_output
        return out

    features.deduplicating = True
    return features


def deduplicate_vision(model: Any) -> bool:
    """Makes a Qwen-VL model's vision tower encode each distinct visual of a batch once. Returns
    whether the model is one it applies to (an inner model with ``visual`` and grid-based
    ``get_image_features``)."""
    inner = getattr(model, "model", None)
    if inner is None or not hasattr(inner, "visual") or not hasattr(inner.visual, "spatial_merge_size"):
        return False
    done = False
    for name in ("get_image_features", "get_video_features"):
        fn = getattr(inner, name, None)
        if fn is not None and not getattr(fn, "deduplicating", False):
            setattr(inner, name, _deduplicating(fn))
            done = True
    return done

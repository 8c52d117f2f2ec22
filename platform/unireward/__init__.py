"""unireward: one multimodal judge for image/video generation and understanding, pairwise and
pointwise; curation of DPO pairs on Ray Data; judge and policy training on Ray Train; an online
reward endpoint on Ray Serve.

The core (``judge``, ``curate``, ``io``, ``synth``) never imports Ray.
"""

from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as _version

try:
    __version__ = _version("unireward")
except PackageNotFoundError:  # running from a source tree without installation
    __version__ = "0.0.0+source"

__all__ = ["__version__"]

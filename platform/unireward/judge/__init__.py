"""THE reward model: protocols, parsing, the logit-method arithmetic and RewardModel."""

from .model import RewardModel
from .parsing import parse
from .protocols import Protocol, ProtocolError, ProtocolRegistry, default_registry
from .types import JudgeItem, Judgment, Mode, Status, Task

__all__ = [
    "JudgeItem",
    "Judgment",
    "Mode",
    "Protocol",
    "ProtocolError",
    "ProtocolRegistry",
    "RewardModel",
    "Status",
    "Task",
    "default_registry",
    "parse",
]

"""The synthetic visual world with ground truth for all four tasks."""

from .world import TASKS, generate_world, items_from_pool

__all__ = ["TASKS", "generate_world", "items_from_pool"]

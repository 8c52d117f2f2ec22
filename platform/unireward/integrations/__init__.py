"""Adapters that let RL trainers take their rewards from the endpoint (``/v1/rewards``)."""

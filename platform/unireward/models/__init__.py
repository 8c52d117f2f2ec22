"""Builders of tiny, real HF/diffusers checkpoints for tests and the demo."""

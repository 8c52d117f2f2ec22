"""Candidate generators: VLM answer sampling and diffusers image/video pipelines."""

from .samplers import DiffusionSampler, VLMSampler, candidate_seed

__all__ = ["DiffusionSampler", "VLMSampler", "candidate_seed"]

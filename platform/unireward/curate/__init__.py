"""Curation: selection strategies (pure functions), exporters and the report. No Ray here."""

from .select import Candidate, PoolRow, PromptResult, bradley_terry, curate_batch, plan_pairs

__all__ = ["Candidate", "PoolRow", "PromptResult", "bradley_terry", "curate_batch", "plan_pairs"]

"""Read-only views of scores for the edges (lead page, API)."""

from .services import lead_explanation, score_history

__all__ = ["lead_explanation", "score_history"]

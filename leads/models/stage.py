"""A lead's lifecycle: the stages, the funnel they form, the moves allowed between
them, and the stage history (``StageChange``), written through ``leads.stages``."""

from __future__ import annotations

from collections.abc import Iterable

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from django.utils import timezone


class Stage(models.TextChoices):
    NEW = "new", "New"
    MQL = "mql", "MQL"
    SQL = "sql", "SQL"
    OPPORTUNITY = "opportunity", "Opportunity"
    CUSTOMER = "customer", "Customer"
    DISQUALIFIED = "disqualified", "Disqualified"
    RECYCLED = "recycled", "Recycled"


# The funnel order; a lead moves forward along it, possibly skipping steps.
FUNNEL = [Stage.NEW, Stage.MQL, Stage.SQL, Stage.OPPORTUNITY, Stage.CUSTOMER]
# How far along the funnel each of its stages is, 0 (new) to 4 (customer).
FUNNEL_STEP: dict[str, int] = {stage: step for step, stage in enumerate(FUNNEL)}


def funnel_step(stage: str) -> int:
    """How far along the funnel ``stage`` is; disqualified and recycled are off it (0)."""
    return FUNNEL_STEP.get(stage, 0)


ALLOWED_TRANSITIONS: dict[str, frozenset[str]] = {
    Stage.NEW: frozenset({Stage.MQL, Stage.SQL, Stage.OPPORTUNITY, Stage.DISQUALIFIED}),
    Stage.MQL: frozenset({Stage.SQL, Stage.OPPORTUNITY, Stage.DISQUALIFIED, Stage.RECYCLED}),
    Stage.SQL: frozenset({Stage.OPPORTUNITY, Stage.DISQUALIFIED, Stage.RECYCLED}),
    Stage.OPPORTUNITY: frozenset({Stage.CUSTOMER, Stage.DISQUALIFIED, Stage.RECYCLED}),
    Stage.CUSTOMER: frozenset(),
    Stage.DISQUALIFIED: frozenset({Stage.RECYCLED}),
    Stage.RECYCLED: frozenset({Stage.MQL, Stage.SQL, Stage.OPPORTUNITY, Stage.DISQUALIFIED}),
}


def furthest_step_of(stage: str, changes: Iterable[tuple[str, str]]) -> int:
    """The furthest funnel step of a lead in ``stage`` with the ``(from_stage, to_stage)``
    history ``changes``: a disqualified or recycled lead keeps the steps it passed."""
    return max([funnel_step(stage), *(funnel_step(s) for change in changes for s in change)])


class StageTransitionError(ValidationError):
    """A stage move that the lifecycle does not allow."""


class StageChange(models.Model):
    """Append-only history of a lead's stage; ``by`` is empty when the system moved it.

    Written and deleted through ``leads.stages``, which keeps the lead's ``furthest_step``.
    """

    lead = models.ForeignKey("Lead", on_delete=models.CASCADE, related_name="stage_changes")
    from_stage = models.CharField(max_length=20, choices=Stage.choices)
    to_stage = models.CharField(max_length=20, choices=Stage.choices)
    at = models.DateTimeField(default=timezone.now)
    by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    reason = models.CharField(max_length=500, blank=True)

    class Meta:
        ordering = ["-at", "-id"]
        indexes = [
            models.Index(fields=["lead", "at"], name="stagechange_lead_at_idx"),
            models.Index(fields=["to_stage", "at"], name="stagechange_to_at_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.from_stage} → {self.to_stage}"

    @property
    def by_system(self) -> bool:
        return self.by_id is None

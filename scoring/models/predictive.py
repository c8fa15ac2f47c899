"""Predictive models: a classifier trained on a scoring model's closed leads, with its
model card (``scoring.predictive``). At most one per scoring model is live at a time; the
others are kept as reports."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone

from .scoring_model import ScoringModel


class PredictiveStatus(models.TextChoices):
    TRAINED = "trained", "Trained"
    LIVE = "live", "Live"
    REJECTED = "rejected", "Rejected by the publish gate"
    SUPERSEDED = "superseded", "Superseded"


class PredictiveModel(models.Model):
    """One training run: its holdout figures beside the rule model's, the features and
    their weights, and the fitted pipeline (``artifact``, written and read only by
    ``scoring.predictive.artifacts``)."""

    model = models.ForeignKey(
        ScoringModel, on_delete=models.CASCADE, related_name="predictive_models"
    )
    status = models.CharField(
        max_length=12, choices=PredictiveStatus.choices, default=PredictiveStatus.TRAINED
    )
    algorithm = models.CharField(max_length=40)
    data_from = models.DateTimeField(help_text="The oldest outcome trained on.")
    data_to = models.DateTimeField(help_text="The newest outcome trained on.")
    n_train = models.PositiveIntegerField()
    n_holdout = models.PositiveIntegerField()
    n_won = models.PositiveIntegerField()
    n_lost = models.PositiveIntegerField()
    roc_auc = models.FloatField(help_text="On the newest outcomes, held out of training.")
    brier = models.FloatField()
    rule_auc = models.FloatField(
        null=True, blank=True, help_text="The rule score's ROC AUC on the same holdout."
    )
    previous_auc = models.FloatField(
        null=True, blank=True, help_text="The live predictive model's ROC AUC on the same holdout."
    )
    calibration_ok = models.BooleanField(default=False)
    cv_scores = models.JSONField(default=dict, help_text="Mean cross-validated AUC by algorithm.")
    calibration = models.JSONField(default=list, help_text="Predicted and observed by decile.")
    lift = models.JSONField(default=list, help_text="Conversion and lift by decile.")
    features = models.JSONField(default=list, help_text="Features with weight or importance.")
    verdict = models.TextField(blank=True, help_text="Why it went live or not, in words.")
    artifact = models.BinaryField(editable=False)
    created_at = models.DateTimeField(default=timezone.now)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )

    class Meta:
        ordering = ["-created_at", "-pk"]
        constraints = [
            models.UniqueConstraint(
                fields=["model"],
                condition=Q(status="live"),
                name="one_live_predictive_model",
            )
        ]

    def __str__(self) -> str:
        return f"{self.model} · {self.get_algorithm_display()} · {self.created_at:%Y-%m-%d}"

    def get_algorithm_display(self) -> str:
        return ALGORITHM_LABELS.get(self.algorithm, self.algorithm)

    @property
    def top_features(self) -> list[dict[str, Any]]:
        return self.features[:15]


ALGORITHM_LABELS = {
    "logistic": "Regularized logistic regression",
    "boosting": "Gradient boosting",
}

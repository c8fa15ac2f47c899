"""Each company's score per scoring model, from its people's scores (``scoring.accounts``)."""

from __future__ import annotations

from django.db import models
from django.utils import timezone

from leads.models import Company

from .scoring_model import ScoringModel


class AccountScore(models.Model):
    """A company's score in one model, from the scores of its leads in that model.

    ``best_fit`` is the best fit among its leads (each up to the model's fit cap),
    ``engagement`` their engagement summed, decayed to ``engagement_at``: a sum of values
    that each halve with the model's half-life halves with it, so its value at a later
    time follows from the decay formula. ``engaged_contacts`` counts the leads whose
    engagement then reached the model's ``engaged_from``. ``score`` and ``band`` follow
    from these (``scoring.account_formula``) at ``updated_at``.

    Written only by ``scoring.accounts`` (set-based, after the leads' scores change,
    and nightly over every company).
    """

    # No relation back from the company (related_name "+"): a company merge moves every
    # row that names a company to the survivor, and a survivor with its own score in the
    # model would then have two; these rows are deleted with the merged company and the
    # survivor's summed again when its people are rescored. No database constraint
    # either: writing a row then takes no lock on the company, so scoring a lead never
    # waits for a company merge that waits for the lead (the merge locks its companies,
    # then their leads); a row left over from a company deleted meanwhile is removed by
    # the nightly refresh.
    company = models.ForeignKey(
        Company,
        on_delete=models.CASCADE,
        related_name="+",
        db_index=False,
        db_constraint=False,
    )
    model = models.ForeignKey(ScoringModel, on_delete=models.CASCADE, related_name="account_scores")
    best_fit = models.FloatField(default=0)
    engagement = models.FloatField(default=0)
    engagement_at = models.DateTimeField(default=timezone.now)
    engaged_contacts = models.PositiveIntegerField(default=0)
    score = models.IntegerField(default=0)
    band = models.CharField(max_length=10, default="cold")
    # Filled by predictive scoring once a model of its own is trained: the probability
    # that at least one of the company's people converts. Empty until then.
    conversion_probability = models.FloatField(
        null=True,
        blank=True,
        help_text="The predictive probability that any of the company's people converts.",
    )
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["company", "model"], name="one_account_score_per_company_and_model"
            )
        ]

    def __str__(self) -> str:
        return f"{self.company_id} in {self.model_id}: {self.score}"

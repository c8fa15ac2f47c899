"""A lead's deals, the pipeline stages open deals move through, the reasons deals are
lost, and what a lead's deals came to; written through ``leads.deals``.

A deal's ``status`` (open, won, lost) is what the reports read; its ``stage`` says
where an open deal stands in the pipeline the admin defines (``DealStage``), and is
kept once the deal closes, as the stage it closed from.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from decimal import Decimal

from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator, RegexValidator
from django.db import models
from django.db.models import Q
from django.utils import timezone

DEFAULT_CURRENCY = "EUR"
CURRENCY_CODE = RegexValidator(r"^[A-Z]{3}$", "Use a three-letter currency code, e.g. EUR.")


class DealOutcome(models.IntegerChoices):
    """What a lead's deals came to, the best of them: one won deal makes a won lead."""

    NONE = 0, "No closed deal"
    LOST = 1, "Lost"
    WON = 2, "Won"

    @classmethod
    def of(cls, statuses: Iterable[str]) -> DealOutcome:
        found = set(statuses)
        if DealStatus.WON in found:
            return cls.WON
        if DealStatus.LOST in found:
            return cls.LOST
        return cls.NONE


class DealStatus(models.TextChoices):
    OPEN = "open", "Open"
    WON = "won", "Won"
    LOST = "lost", "Lost"


class DealStage(models.Model):
    """A step of the deal pipeline, as admins and marketers define it: where an open deal
    stands, how likely a deal there is to be won, and how long it may sit there before
    it counts as rotting. Won and lost are a deal's status, not stages."""

    name = models.CharField(max_length=100, unique=True)
    position = models.PositiveSmallIntegerField(
        default=0, help_text="Columns of the deal board run from the lowest position up."
    )
    probability = models.PositiveSmallIntegerField(
        validators=[MaxValueValidator(100)],
        help_text="Per cent chance that a deal in this stage is won: its weight in the "
        "weighted totals, unless the deal sets its own.",
    )
    rot_days = models.PositiveSmallIntegerField(
        null=True,
        blank=True,
        validators=[MinValueValidator(1)],
        verbose_name="rots after (days)",
        help_text="A deal left this many days in the stage is flagged as rotting; empty: never.",
    )

    class Meta:
        ordering = ["position", "id"]
        constraints = [
            models.CheckConstraint(
                condition=Q(probability__lte=100), name="dealstage_probability_at_most_100"
            ),
            models.CheckConstraint(
                condition=Q(rot_days__isnull=True) | Q(rot_days__gte=1),
                name="dealstage_rot_days_positive",
            ),
        ]

    def __str__(self) -> str:
        return self.name

    def rotting_days(self, *, idle_since: dt.datetime, now: dt.datetime) -> int | None:
        """Days an open deal in this stage since ``idle_since`` has idled, once past the
        stage's limit; None while within it, or when the stage never rots."""
        if self.rot_days is None:
            return None
        idle = (now - idle_since).days
        return idle if idle >= self.rot_days else None


class LostReason(models.Model):
    """A reason a deal is lost, from the pick-list admins and marketers edit. A lost deal
    keeps the reason's name as it was (``Deal.lost_reason``): renaming or retiring a
    reason leaves the deals lost for it as they are."""

    name = models.CharField(max_length=200, unique=True)
    position = models.PositiveSmallIntegerField(default=0)
    active = models.BooleanField(
        default=True, help_text="Offered when a deal is lost; retired reasons stay on old deals."
    )

    class Meta:
        ordering = ["position", "name"]

    def __str__(self) -> str:
        return self.name


class Deal(models.Model):
    """A lead's deal, written and deleted through ``leads.deals``, which keeps its lead's
    ``deal_outcome`` and its lead's stage in step (a won deal makes a customer)."""

    lead = models.ForeignKey("Lead", on_delete=models.CASCADE, related_name="deals")
    name = models.CharField(max_length=200)
    amount = models.DecimalField(
        max_digits=14, decimal_places=2, default=0, validators=[MinValueValidator(0)]
    )
    currency = models.CharField(max_length=3, default=DEFAULT_CURRENCY, validators=[CURRENCY_CODE])
    status = models.CharField(max_length=10, choices=DealStatus.choices, default=DealStatus.OPEN)
    created_at = models.DateTimeField(default=timezone.now)
    closed_at = models.DateTimeField(null=True, blank=True)
    lost_reason = models.CharField(max_length=200, blank=True)
    # Empty for a deal written around the services (an import): the board shows it
    # under "No stage" until someone moves it.
    stage = models.ForeignKey(
        DealStage, null=True, blank=True, on_delete=models.PROTECT, related_name="deals"
    )
    stage_changed_at = models.DateTimeField(
        default=timezone.now, help_text="When the deal entered its stage: how long it has idled."
    )
    expected_close = models.DateField(null=True, blank=True)
    probability = models.PositiveSmallIntegerField(
        null=True,
        blank=True,
        validators=[MaxValueValidator(100)],
        help_text="Per cent chance of winning; empty: the stage's.",
    )
    product_line = models.ForeignKey(
        "ProductLine", null=True, blank=True, on_delete=models.SET_NULL, related_name="deals"
    )
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="owned_deals",
    )
    # A copy of the lead's owner, kept by the database: triggers (migration
    # ``0027_deal_lead_owner``) set it from the lead whenever a deal is written, whatever
    # Python holds, and follow the lead's owner when it changes. Who sees the deal
    # (``leads.permissions.deals_visible_to``) is then read from the deal's row alone:
    # the deal board's totals need no lead. Nothing in Python writes it.
    lead_owner = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        editable=False,
        on_delete=models.DO_NOTHING,
        db_constraint=False,
        db_index=False,
        related_name="+",
    )

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.CheckConstraint(
                condition=Q(status="open", closed_at__isnull=True)
                | (~Q(status="open") & Q(closed_at__isnull=False)),
                name="deal_closed_at_matches_status",
            ),
            models.CheckConstraint(condition=Q(amount__gte=0), name="deal_amount_not_negative"),
            models.CheckConstraint(
                condition=Q(probability__isnull=True) | Q(probability__lte=100),
                name="deal_probability_at_most_100",
            ),
        ]
        indexes = [
            models.Index(fields=["status", "closed_at"], name="deal_status_closed_idx"),
            # The deal board: each stage's open deals, soonest expected close first.
            models.Index(
                fields=["stage", "expected_close", "id"],
                condition=Q(status="open"),
                name="deal_open_board_idx",
            ),
            # The deal board's rotting count: each stage's open deals idle since a
            # moment, with the columns its filters read, from the index alone.
            models.Index(
                fields=["stage", "stage_changed_at"],
                condition=Q(status="open"),
                include=["lead_owner", "owner", "product_line"],
                name="deal_open_idle_idx",
            ),
        ]

    def __str__(self) -> str:
        return self.name

    @property
    def is_open(self) -> bool:
        return self.status == DealStatus.OPEN

    @property
    def win_probability(self) -> int:
        """Per cent: the deal's own, else its stage's, else none (no stage)."""
        if self.probability is not None:
            return self.probability
        return self.stage.probability if self.stage is not None else 0

    @property
    def weighted_amount(self) -> Decimal:
        return self.amount * self.win_probability / 100

    def rotting_days(self, now: dt.datetime) -> int | None:
        """Days the open deal has idled in its stage once past the stage's limit, None
        while it is within it (or closed, or in a stage that never rots)."""
        if not self.is_open or self.stage is None:
            return None
        return self.stage.rotting_days(idle_since=self.stage_changed_at, now=now)


def _total_key(to: type[models.Model] | str) -> models.ForeignKey:
    """A column of a total's key: the deal's own, copied by the triggers, with no
    constraint or index of its own (the key's unique index serves)."""
    return models.ForeignKey(
        to,
        null=True,
        on_delete=models.DO_NOTHING,
        db_constraint=False,
        db_index=False,
        related_name="+",
    )


class DealBoardTotal(models.Model):
    """What the open deals of one stage, currency, lead owner, deal owner and product line
    come to: how many, their amount, and what weighs their amount by a chance of winning.

    Kept by the database, never by Python: triggers on the deal table (migration
    ``0033_deal_board_totals``) add each statement's open deals to their row and take
    away what they were, whatever writes them (the services, an import, a merge moving
    deals to another lead, the lead owner's copy following the lead). The deal board
    reads its column totals here, a few thousand rows at most, instead of summing every
    open deal a manager sees. The key holds the columns the board filters by, under the
    names the deal has, so one condition (``leads.permissions.deal_visibility`` and the
    board's filters) selects both deals and totals.

    The weighted amount is the deals' own chances plus the stage's on the rest:
    ``(chance_amount + stage_amount * stage.probability) / 100``, so that a change to a
    stage's probability needs no rewrite here. A key whose deals all closed or moved
    stays, at zero.
    """

    stage = _total_key(DealStage)
    currency = models.CharField(max_length=3)
    lead_owner = _total_key(settings.AUTH_USER_MODEL)
    owner = _total_key(settings.AUTH_USER_MODEL)
    product_line = _total_key("ProductLine")
    deals = models.IntegerField(default=0)
    amount = models.DecimalField(max_digits=20, decimal_places=2, default=0)
    # The sum of amount x probability (per cent) of the deals with a chance of their own.
    chance_amount = models.DecimalField(max_digits=24, decimal_places=2, default=0)
    # The sum of the amounts of the deals that take their stage's chance.
    stage_amount = models.DecimalField(max_digits=20, decimal_places=2, default=0)

    class Meta:
        constraints = [
            # What the triggers' upsert finds its row by on PostgreSQL, NULLs as equal;
            # SQLite, which has no such index, looks the row up with IS.
            models.UniqueConstraint(
                fields=["stage", "currency", "lead_owner", "owner", "product_line"],
                nulls_distinct=False,
                name="deal_board_total_key",
            )
        ]

    def __str__(self) -> str:
        return f"{self.deals} open deals in {self.currency}"

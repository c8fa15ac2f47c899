"""Likely duplicates: each lead's match keys, the pairs found for review, and the
threshold the admin sets.

The nightly scan (``leads.duplicates``) keeps one ``LeadMatchKey`` row per lead: its
email, phone, name and company reduced to the forms that compare (a mailbox without
its ``+tag``, a phone in E.164, a name and company lower-cased without punctuation or
legal suffixes). The keys sit in a narrow table of their own, indexed for the joins
that find pairs, so the wide lead table gains no index. Pairs found go to the review
queue (``DuplicatePair``); a pair answered "not a duplicate" keeps that answer and is
never suggested again.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import F, Q
from django.utils import timezone

from .lead import Lead
from .merge import LeadMerge


class LeadMatchKey(models.Model):
    """What a lead is compared by, kept by the duplicate scan (module docstring)."""

    lead = models.OneToOneField(
        Lead, on_delete=models.CASCADE, primary_key=True, related_name="match_key"
    )
    email_key = models.CharField(max_length=254, blank=True)
    phone_key = models.CharField(max_length=20, blank=True)
    name_key = models.CharField(max_length=201, blank=True)
    company_key = models.CharField(max_length=200, blank=True)
    # The lead's ``updated_at`` the keys were computed from: a later one means stale keys.
    lead_updated_at = models.DateTimeField()
    # False until the scan compared these keys with every other lead's.
    scanned = models.BooleanField(default=False)

    class Meta:
        verbose_name = "lead match key"
        indexes = [
            models.Index(
                fields=["email_key"], condition=~Q(email_key=""), name="matchkey_email_idx"
            ),
            models.Index(
                fields=["phone_key"], condition=~Q(phone_key=""), name="matchkey_phone_idx"
            ),
            models.Index(
                fields=["company_key", "name_key"],
                condition=~Q(company_key="") & ~Q(name_key=""),
                name="matchkey_company_name_idx",
            ),
            models.Index(
                fields=["lead"], condition=Q(scanned=False), name="matchkey_unscanned_idx"
            ),
        ]

    def __str__(self) -> str:
        return f"keys of lead {self.lead_id}"


class PairStatus(models.TextChoices):
    OPEN = "open", "To review"
    NOT_DUPLICATE = "not_duplicate", "Not a duplicate"
    MERGED = "merged", "Merged"


class DuplicatePairQuerySet(models.QuerySet["DuplicatePair"]):
    def open(self) -> DuplicatePairQuerySet:
        return self.filter(status=PairStatus.OPEN)

    def sure(self) -> DuplicatePairQuerySet:
        """Pairs with the same mailbox: merged in bulk without a person's look at each."""
        return self.filter(sure=True)


class DuplicatePair(models.Model):
    """Two leads that look like one person, with the evidence, waiting for an answer.

    ``lead_a`` has the lower id. The leads are loose keys: a merged pair is kept as the
    record of its answer after its merged lead's row is gone (``merge`` says which
    merge), and deleting a lead never has to write here; the scan drops the open pairs
    of leads deleted otherwise.
    """

    lead_a = models.ForeignKey(
        Lead, on_delete=models.DO_NOTHING, db_constraint=False, related_name="+"
    )
    lead_b = models.ForeignKey(
        Lead, on_delete=models.DO_NOTHING, db_constraint=False, related_name="+"
    )
    reasons = models.JSONField(
        default=list,
        help_text='The evidence: [{"kind": "email" | "phone" | "name_company", …}].',
    )
    score = models.FloatField(help_text="How sure, 0 to 1: 1 for the same mailbox.")
    sure = models.BooleanField(
        default=False, help_text="The same mailbox: merged in bulk without a look at each."
    )
    status = models.CharField(max_length=20, choices=PairStatus.choices, default=PairStatus.OPEN)
    found_at = models.DateTimeField(default=timezone.now)
    decided_at = models.DateTimeField(null=True, blank=True)
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        db_index=False,
    )
    merge = models.ForeignKey(
        LeadMerge, null=True, blank=True, on_delete=models.SET_NULL, related_name="pairs"
    )

    objects = DuplicatePairQuerySet.as_manager()

    class Meta:
        verbose_name = "duplicate pair"
        ordering = ["-score", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["lead_a", "lead_b"], name="duplicatepair_unique"),
            models.CheckConstraint(
                condition=Q(lead_a__lt=F("lead_b")), name="duplicatepair_ordered"
            ),
        ]
        indexes = [
            models.Index(fields=["status", "-score"], name="duplicatepair_queue_idx"),
            models.Index(fields=["lead_b"], name="duplicatepair_lead_b_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.lead_a_id} ≈ {self.lead_b_id}"


class DuplicateSettings(models.Model):
    """The one row of duplicate-detection settings, changed in the admin."""

    name_similarity = models.FloatField(
        default=0.6,
        help_text="How alike two names at one company must be to be suggested, 0.1 to 1 "
        "(trigram similarity on PostgreSQL; SQLite suggests equal names only).",
    )
    company_name_similarity = models.FloatField(
        default=0.7,
        help_text="How alike two company names must be to be suggested, 0.1 to 1, legal "
        "forms (Inc, GmbH, …) left out (trigram similarity on PostgreSQL; SQLite suggests "
        "equal names only).",
    )
    last_scan_at = models.DateTimeField(null=True, blank=True, editable=False)
    last_scan_leads = models.PositiveIntegerField(default=0, editable=False)
    last_scan_pairs = models.PositiveIntegerField(default=0, editable=False)
    last_scan_companies = models.PositiveIntegerField(default=0, editable=False)
    last_scan_company_pairs = models.PositiveIntegerField(default=0, editable=False)

    class Meta:
        verbose_name = verbose_name_plural = "duplicate settings"
        constraints = [
            models.CheckConstraint(condition=Q(pk=1), name="duplicatesettings_single_row"),
            models.CheckConstraint(
                condition=Q(name_similarity__gte=0.1, name_similarity__lte=1),
                name="duplicatesettings_similarity_range",
            ),
            models.CheckConstraint(
                condition=Q(company_name_similarity__gte=0.1, company_name_similarity__lte=1),
                name="duplicatesettings_company_similarity_range",
            ),
        ]

    def __str__(self) -> str:
        return "Duplicate settings"

    @classmethod
    def load(cls) -> DuplicateSettings:
        settings_row, _ = cls.objects.get_or_create(pk=1)
        return settings_row

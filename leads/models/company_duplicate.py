"""Likely duplicate companies: each company's match keys and the pairs found for review.

The nightly scan (``leads.company_duplicates``) keeps one ``CompanyMatchKey`` row per
company (its name lower-cased without punctuation or legal suffixes), one
``CompanyNameWord`` row per word of that name, and one ``CompanyDomainKey`` row per
domain that names it: its website's, and its leads' email domains that are not a
free-mail provider's. The keys sit in narrow tables of their own, indexed for the joins
that find pairs. Pairs go to the review queue (``CompanyDuplicatePair``); a pair
answered "not a duplicate" keeps that answer and is never suggested again.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import F, Q
from django.utils import timezone

from .company import Company
from .company_merge import CompanyMerge
from .duplicate import PairStatus


class CompanyMatchKey(models.Model):
    """What a company's name is compared by, kept by the scan (module docstring)."""

    company = models.OneToOneField(
        Company, on_delete=models.CASCADE, primary_key=True, related_name="match_key"
    )
    name_key = models.CharField(max_length=200, blank=True)
    # False until the scan compared this company's keys with every other company's.
    scanned = models.BooleanField(default=False)

    class Meta:
        verbose_name = "company match key"
        indexes = [
            models.Index(
                fields=["name_key"], condition=~Q(name_key=""), name="companykey_name_idx"
            ),
            models.Index(
                fields=["company"], condition=Q(scanned=False), name="companykey_unscanned_idx"
            ),
        ]

    def __str__(self) -> str:
        return f"keys of company {self.company_id}"


class CompanyNameWord(models.Model):
    """A word of a company's name key: companies are compared by name only with the
    companies that share a word of it (module docstring of ``leads.company_duplicates``)."""

    company = models.ForeignKey(Company, on_delete=models.CASCADE, related_name="name_words")
    word = models.CharField(max_length=200)

    class Meta:
        verbose_name = "company name word"
        constraints = [
            models.UniqueConstraint(fields=["company", "word"], name="companynameword_unique")
        ]
        indexes = [models.Index(fields=["word", "company"], name="companynameword_word_idx")]

    def __str__(self) -> str:
        return f"{self.word} of company {self.company_id}"


class CompanyDomainKey(models.Model):
    """A domain that names a company: its website's (``web``) or its leads' addresses'."""

    company = models.ForeignKey(Company, on_delete=models.CASCADE, related_name="domain_keys")
    domain = models.CharField(max_length=253)
    web = models.BooleanField(
        default=False, help_text="The company's own website, not only its leads' addresses."
    )

    class Meta:
        verbose_name = "company domain key"
        constraints = [
            models.UniqueConstraint(fields=["company", "domain"], name="companydomainkey_unique")
        ]
        indexes = [models.Index(fields=["domain"], name="companydomainkey_domain_idx")]

    def __str__(self) -> str:
        return f"{self.domain} of company {self.company_id}"


class CompanyPairQuerySet(models.QuerySet["CompanyDuplicatePair"]):
    def open(self) -> CompanyPairQuerySet:
        return self.filter(status=PairStatus.OPEN)

    def sure(self) -> CompanyPairQuerySet:
        """Pairs with the same website: merged in bulk without a person's look at each."""
        return self.filter(sure=True)


class CompanyDuplicatePair(models.Model):
    """Two companies that look like one, with the evidence, waiting for an answer.

    ``company_a`` has the lower id. The companies are loose keys, as a ``DuplicatePair``'s
    leads are: a merged pair is kept as the record of its answer (``merge`` says which
    merge) after its merged company's row is gone; the scan drops the open pairs of
    companies deleted otherwise.
    """

    company_a = models.ForeignKey(
        Company, on_delete=models.DO_NOTHING, db_constraint=False, related_name="+"
    )
    company_b = models.ForeignKey(
        Company, on_delete=models.DO_NOTHING, db_constraint=False, related_name="+"
    )
    reasons = models.JSONField(
        default=list,
        help_text='The evidence: [{"kind": "domain" | "mail_domain" | "name", "score": …, '
        '"value": the domain shared}].',
    )
    score = models.FloatField(help_text="How sure, 0 to 1: 1 for the same website.")
    sure = models.BooleanField(
        default=False, help_text="The same website: merged in bulk without a look at each."
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
        CompanyMerge, null=True, blank=True, on_delete=models.SET_NULL, related_name="pairs"
    )

    objects = CompanyPairQuerySet.as_manager()

    class Meta:
        verbose_name = "duplicate company pair"
        ordering = ["-score", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["company_a", "company_b"], name="companyduplicatepair_unique"
            ),
            models.CheckConstraint(
                condition=Q(company_a__lt=F("company_b")), name="companyduplicatepair_ordered"
            ),
        ]
        indexes = [
            models.Index(fields=["status", "-score"], name="companypair_queue_idx"),
            models.Index(fields=["company_b"], name="companypair_company_b_idx"),
        ]

    def __str__(self) -> str:
        return f"company {self.company_a_id} ≈ {self.company_b_id}"

"""Companies the leads work for."""

from __future__ import annotations

from typing import Any

from django.db import models
from django.db.models import Q
from django.db.models.functions import Lower
from django.urls import reverse
from django.utils import timezone


class Industry(models.TextChoices):
    SOFTWARE = "software", "Software"
    FINANCE = "finance", "Financial services"
    HEALTHCARE = "healthcare", "Healthcare"
    MANUFACTURING = "manufacturing", "Manufacturing"
    RETAIL = "retail", "Retail"
    EDUCATION = "education", "Education"
    GOVERNMENT = "government", "Government"
    MEDIA = "media", "Media"
    LOGISTICS = "logistics", "Logistics"
    CONSULTING = "consulting", "Consulting"
    NONPROFIT = "nonprofit", "Non-profit"
    OTHER = "other", "Other"


class Company(models.Model):
    name = models.CharField(max_length=200)
    domain = models.CharField(max_length=253, blank=True, help_text="example.com")
    industry = models.CharField(max_length=30, choices=Industry.choices, blank=True)
    employee_count = models.PositiveIntegerField(null=True, blank=True)
    annual_revenue = models.DecimalField(
        max_digits=15, decimal_places=2, null=True, blank=True, help_text="In the account currency."
    )
    country = models.CharField(max_length=2, blank=True, help_text="ISO 3166 code, e.g. DE")
    region = models.CharField(max_length=100, blank=True)
    city = models.CharField(max_length=100, blank=True)
    created_at = models.DateTimeField(default=timezone.now, editable=False)

    class Meta:
        verbose_name_plural = "companies"
        ordering = ["name"]
        constraints = [
            models.UniqueConstraint(
                Lower("domain"), condition=~Q(domain=""), name="company_unique_domain"
            )
        ]
        # The leads list sorted by company walks this, then each company's leads.
        indexes = [models.Index(fields=["name", "id"], name="company_name_idx")]

    def __str__(self) -> str:
        return self.name

    def save(self, *args: Any, **kwargs: Any) -> None:
        self.domain = self.domain.strip().lower()
        super().save(*args, **kwargs)

    def get_absolute_url(self) -> str:
        return reverse("company-detail", args=[self.pk])

"""Merged companies: the record of each merge, which undoes it, and the ids of merged
companies.

As with leads (``leads.models.merge``), the surviving company keeps its id; the merged
companies' rows are deleted once their leads (and any other row naming them) have moved,
and their ids live on as aliases (``CompanyAlias``) that the API answers with the
survivor. The ``CompanyMerge`` row holds what an undo needs (``leads.company_merging``).
"""

from __future__ import annotations

from django.db import models

from .company import Company
from .merge import ExactJSONEncoder, MergeRecord


class CompanyMerge(MergeRecord):
    """One merge of companies into a survivor, with everything needed to undo it."""

    # Kept when the survivor is deleted or merged away itself: the record stays.
    survivor = models.ForeignKey(
        Company, null=True, on_delete=models.SET_NULL, related_name="merges", db_index=False
    )
    survivor_ref = models.BigIntegerField(
        "survivor id", help_text="The survivor's id, kept when its row is gone."
    )
    merged_ids = models.JSONField(default=list, help_text="The ids of the companies merged in.")
    fields = models.JSONField(
        default=dict,
        encoder=ExactJSONEncoder,
        help_text="Per field the survivor took: from which company, its value before and after.",
    )
    snapshots = models.JSONField(
        default=dict,
        encoder=ExactJSONEncoder,
        help_text="Each merged company's row as it was.",
    )
    moved = models.JSONField(
        default=dict,
        help_text="Per kind of row, per merged company, the ids that moved to the survivor.",
    )

    class Meta(MergeRecord.Meta):
        verbose_name = "company merge"
        indexes = [models.Index(fields=["survivor_ref", "-at"], name="companymerge_survivor_idx")]

    def __str__(self) -> str:
        merged = ", ".join(str(pk) for pk in self.merged_ids)
        return f"companies {merged} into {self.survivor_ref}"


class CompanyAlias(models.Model):
    """The id of a merged company, answered by the company it was merged into."""

    alias_id = models.BigIntegerField(primary_key=True, help_text="The merged company's id.")
    company = models.ForeignKey(Company, on_delete=models.CASCADE, related_name="aliases")
    merge = models.ForeignKey(CompanyMerge, on_delete=models.CASCADE, related_name="aliases")

    class Meta:
        verbose_name = "company alias"
        verbose_name_plural = "company aliases"
        ordering = ["alias_id"]

    def __str__(self) -> str:
        return f"{self.alias_id} → {self.company_id}"

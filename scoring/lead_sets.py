"""The sets of leads that scoring work walks through: a model's segment, consecutive
id ranges covering every lead, and chunks of ids."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

from django.db.models import Max, Min, QuerySet

from leads.models import Lead

from .models import ScoringModel

CHUNK_SIZE = 500


def segment_leads(model: ScoringModel) -> QuerySet[Lead]:
    """The leads a model scores; for a candidate version, the leads of the model it would
    replace. Distinct only by their ids: ``segment_lead_ids``."""
    if model.is_candidate and model.version_of is not None:
        model = model.version_of
    leads = Lead.objects.all()
    if not model.is_default:
        leads = leads.filter(product_interests__in=model.segment_product_lines.all())
    return leads


def segment_lead_ids(model: ScoringModel) -> Any:
    """The ids of the leads a model scores (a queryset, evaluated in chunks)."""
    return segment_leads(model).order_by("pk").values_list("pk", flat=True).distinct()


def segment_sql(*, is_default: bool, segment_ids: list[int], lead: str) -> tuple[str, list[Any]]:
    """The SQL test that the lead whose id is the column ``lead`` is one a model with this
    segment scores (the set-based twin of ``segment_leads``): every lead for the default
    model, else those interested in one of its product lines."""
    if is_default:
        return "TRUE", []
    return (
        "EXISTS (SELECT 1 FROM leads_lead_product_interests s "
        f"WHERE s.lead_id = {lead} AND s.productline_id = ANY(%s))",
        [segment_ids],
    )


def lead_id_ranges(size: int) -> list[tuple[int, int]]:
    """Consecutive ranges of ``size`` lead ids that together cover every lead, in order."""
    bounds = Lead.objects.aggregate(lo=Min("pk"), hi=Max("pk"))
    if bounds["lo"] is None:
        return []
    return [(lo, lo + size - 1) for lo in range(bounds["lo"], bounds["hi"] + 1, size)]


def chunks(ids: Sequence[int], size: int) -> Iterator[list[int]]:
    for start in range(0, len(ids), size):
        yield list(ids[start : start + size])

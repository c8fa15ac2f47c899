"""A lead's report facts (``furthest_step``, ``deal_outcome``) kept around the writes of
its stage history (``leads.stages``) and its deals (``leads.deals``)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager

from django.db import transaction

from .models import Lead, LeadQuerySet


@contextmanager
def lead_facts_kept(
    lead_ids: Iterable[int], refresh: Callable[[LeadQuerySet], int]
) -> Iterator[None]:
    """Around a write of stage changes or deals: lock their leads first (so the facts
    are read after any concurrent write), then ``refresh`` the leads' stored facts from
    what the write left, in the same transaction."""
    with transaction.atomic():
        leads = Lead.objects.filter(pk__in=list(lead_ids))
        leads.lock()
        yield
        refresh(leads)

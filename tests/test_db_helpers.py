"""``crm.db.update_rows``: the bulk UPDATE the scoring engine writes its results with."""

from datetime import UTC, datetime

import pytest

from crm.db import update_rows
from leads.models import Lead
from tests.factories import LeadFactory

pytestmark = pytest.mark.django_db


def test_writes_the_named_fields_of_each_row_and_nothing_else():
    first, second, untouched = LeadFactory.create_batch(3, job_title="Engineer")
    at = datetime(2026, 5, 1, 12, 30, tzinfo=UTC)
    first.score, first.band, first.engagement_at = 91, "hot", at
    second.score, second.band, second.engagement_at = 12, "cold", None
    first.job_title = second.job_title = "changed in memory only"

    assert update_rows([first, second], ["score", "band", "engagement_at"]) == 2

    rows = {lead.pk: lead for lead in Lead.objects.all()}
    assert (rows[first.pk].score, rows[first.pk].band, rows[first.pk].engagement_at) == (
        91,
        "hot",
        at,
    )
    assert (rows[second.pk].score, rows[second.pk].band, rows[second.pk].engagement_at) == (
        12,
        "cold",
        None,
    )
    assert {lead.job_title for lead in rows.values()} == {"Engineer"}
    assert rows[untouched.pk].score == untouched.score


def test_splits_large_updates_into_batches():
    leads = LeadFactory.create_batch(7)
    for index, lead in enumerate(leads):
        lead.score = 100 + index
    assert update_rows(leads, ["score"], batch_size=3) == 7
    assert sorted(Lead.objects.values_list("score", flat=True)) == list(range(100, 107))


def test_nothing_to_write_runs_no_query(django_assert_num_queries):
    with django_assert_num_queries(0):
        assert update_rows([], ["score"]) == 0


def test_refuses_the_primary_key_and_many_to_many_fields():
    lead = LeadFactory()
    with pytest.raises(ValueError, match="non-key fields"):
        update_rows([lead], ["id"])
    with pytest.raises(ValueError, match="non-key fields"):
        update_rows([lead], ["product_interests"])

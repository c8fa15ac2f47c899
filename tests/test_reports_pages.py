"""The report pages through the Django client: figures, CSV exports, the "scores are
backwards" flag, clear messages for empty ranges, roles and bad input.

The world is the hand-built one of ``test_reports_queries``; its figures are worked out
there by hand.
"""

from __future__ import annotations

import csv
import io

import pytest
from django.urls import reverse

from leads.models import Lead
from reports.pages.catalogue import REPORTS
from scoring.models import LeadScore, ScoringModel
from tests.test_reports_queries import MARCH, build_world

SLUGS = list(REPORTS)


@pytest.fixture
def world(rep, other_rep, manager):
    return build_world(rep, other_rep)


def page_url(slug: str | None = None) -> str:
    return reverse("reports-page", args=[slug]) if slug else reverse("reports")


def csv_rows(response) -> list[list[str]]:
    return list(csv.reader(io.StringIO(response.content.decode())))


def test_index_shows_the_key_figures_and_links(client, world, manager):
    client.force_login(manager)

    response = client.get(page_url(), MARCH)

    assert response.status_code == 200
    text = response.content.decode()
    assert "<dt>Leads</dt><dd>9</dd>" in text
    assert "<dt>Win rate (won / closed)</dt><dd>37.5 %</dd>" in text
    assert "<dt>ROC AUC of the score</dt><dd>0.933</dd>" in text
    for slug in SLUGS:
        assert page_url(slug) in text


def test_funnel_page_and_its_csv(client, world, manager):
    client.force_login(manager)

    response = client.get(page_url("funnel"), MARCH)

    assert response.status_code == 200
    text = response.content.decode()
    assert '<title id="chart-funnel-title">Funnel: leads reaching each stage</title>' in text
    assert "MQL: 7 (77.8 % of the step before)" in text
    export = client.get(page_url("funnel"), {**MARCH, "format": "csv"})
    assert export["Content-Type"].startswith("text/csv")
    assert (
        export["Content-Disposition"]
        == 'attachment; filename="hotlist-funnel-steps-2025-03-31.csv"'
    )
    rows = csv_rows(export)
    assert rows[0][:4] == ["Step", "Leads", "From the step before (%)", "Of all leads (%)"]
    assert rows[1][:2] == ["Leads", "9"]
    assert rows[2][:3] == ["MQL", "7", "77.78"]
    # Median days in MQL (2) and p90 (3.4), as worked out in the query tests.
    assert rows[2][5:] == ["2.0", "3.4"]
    reasons = csv_rows(
        client.get(page_url("funnel"), {**MARCH, "format": "csv", "table": "reasons"})
    )
    assert ["Disqualified", "Chose a competitor", "2"] in reasons


@pytest.mark.parametrize("table", ["steps", "cohorts", "reasons"])
def test_a_funnel_export_holds_the_rows_of_the_page_table(client, world, manager, table):
    """An export reads only what its table needs; its rows are still the page's."""
    from django.http import QueryDict

    from reports.scope import ReportFilterForm, scope_from

    form = ReportFilterForm(MARCH, user=manager)
    assert form.is_valid()
    page = REPORTS["funnel"].build(scope_from(form), QueryDict())
    client.force_login(manager)

    export = client.get(page_url("funnel"), {**MARCH, "format": "csv", "table": table})

    expected = list(page.table(table).csv_rows())
    assert csv_rows(export) == [[str(cell) for cell in row] for row in expected]
    assert len(expected) > 1


def test_score_page_shows_conversion_by_band_and_auc(client, world, manager):
    client.force_login(manager)

    response = client.get(page_url("score"), MARCH)

    text = response.content.decode()
    assert response.status_code == 200
    assert "Hot: 66.7 % of 3 closed" in text
    assert "<dt>ROC AUC</dt><dd>0.933</dd>" in text
    assert "Scores are backwards" not in text
    rows = csv_rows(client.get(page_url("score"), {**MARCH, "format": "csv", "table": "bands"}))
    assert rows[1][:6] == ["Hot", "3", "3", "2", "66.67", "1.78"]


def test_a_model_whose_high_bands_convert_worse_is_flagged_in_red(client, world, marketer):
    # Given a model that puts the lost leads high and the won leads low
    backwards = ScoringModel.objects.create(name="Backwards", hot_from=80, warm_from=30)
    leads = world["leads"]
    for name, band, score in [
        ("H1", "cold", 10),
        ("W1", "cold", 5),
        ("H3", "hot", 90),
        ("W2", "hot", 85),
    ]:
        LeadScore.objects.create(lead=leads[name], model=backwards, band=band, score=score)
    client.force_login(marketer)

    response = client.get(page_url("score"), {**MARCH, "model": backwards.pk})

    text = response.content.decode()
    assert '<p class="report-alert" role="alert"><strong>Scores are backwards' in text
    assert "Hot: 0.0 % of 2 closed" in text
    assert "Cold: 100.0 % of 2 closed" in text


def test_a_model_with_no_closed_leads_says_so(client, world, marketer):
    fresh = ScoringModel.objects.create(name="Fresh", hot_from=80, warm_from=30)
    for name in ("C3", "X"):
        LeadScore.objects.create(lead=world["leads"][name], model=fresh, band="cold", score=3)
    client.force_login(marketer)

    for slug in ("score", "rules"):
        response = client.get(page_url(slug), {**MARCH, "model": fresh.pk})

        assert response.status_code == 200
        assert "No closed leads in this range for this model yet" in response.content.decode()


@pytest.mark.parametrize("slug", SLUGS)
def test_an_empty_range_renders_a_clear_message(client, world, manager, slug):
    client.force_login(manager)

    empty = {"date_from": "2020-01-01", "date_to": "2020-01-31"}

    response = client.get(page_url(slug), empty)

    assert response.status_code == 200
    text = response.content.decode()
    assert "No leads in this range" in text or "No hand-offs" in text or "No nurture" in text
    export = client.get(page_url(slug), {**empty, "format": "csv"})
    assert export.status_code == 200
    rows = csv_rows(export)[1:]
    if slug == "rules":
        # The model's rules are listed, each matching nobody.
        assert [row[2] for row in rows] == ["0", "0"]
    else:
        assert rows == []


@pytest.mark.parametrize("slug", SLUGS)
def test_each_report_page_runs_a_bounded_number_of_queries(
    client, world, manager, slug, django_assert_max_num_queries
):
    client.force_login(manager)

    with django_assert_max_num_queries(25):
        response = client.get(page_url(slug), MARCH)

    assert response.status_code == 200


def test_csv_cells_cannot_run_as_formulas(client, world, manager):
    client.force_login(manager)

    campaigns = client.get(page_url("sources"), {**MARCH, "by": "campaign", "format": "csv"})
    rejections = client.get(page_url("speed"), {**MARCH, "format": "csv", "table": "rejections"})

    names = [row[0] for row in csv_rows(campaigns)[1:]]
    assert "'=cmd|' /C calc'!A0" in names
    assert csv_rows(rejections)[1] == ["'@SUM(1) wrong territory", "1"]


def test_user_text_is_escaped_on_the_page(client, world, manager):
    Lead.objects.filter(pk=world["leads"]["C3"].pk).update(campaign="<script>alert(1)</script>")
    client.force_login(manager)

    response = client.get(page_url("sources"), {**MARCH, "by": "campaign"})

    text = response.content.decode()
    assert "<script>alert(1)</script>" not in text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in text


def test_sources_page_shows_cost_per_lead(client, world, marketer):
    client.force_login(marketer)

    rows = csv_rows(client.get(page_url("sources"), {**MARCH, "by": "campaign", "format": "csv"}))

    header, webinar = rows[0], next(r for r in rows if r[0] == "Spring webinar")
    assert dict(zip(header, webinar, strict=True))["Cost per lead"] == "300.00"
    assert dict(zip(header, webinar, strict=True))["Cost per customer"] == "300.00"


def test_rep_sees_only_their_own_numbers(client, world, rep, other_rep):
    client.force_login(rep)

    response = client.get(page_url("speed"), {**MARCH, "format": "csv"})
    index = client.get(page_url(), MARCH)

    names = [row[0] for row in csv_rows(response)[1:]]
    assert names == [str(rep)]
    assert "<dt>Leads</dt><dd>5</dd>" in index.content.decode()
    # The owner and team filters are not offered to a rep, and naming one changes nothing.
    assert 'name="owner"' not in index.content.decode()
    mine = client.get(page_url(), {**MARCH, "owner": other_rep.pk})
    assert "<dt>Leads</dt><dd>5</dd>" in mine.content.decode()


def test_manager_cannot_filter_by_someone_outside_their_teams(client, world, manager):
    client.force_login(manager)

    response = client.get(page_url("funnel"), {**MARCH, "owner": world["east_rep"].pk})

    assert response.status_code == 400
    assert "Select a valid choice" in response.content.decode()


def test_bad_range_is_a_400_with_a_field_message(client, world, manager):
    client.force_login(manager)

    response = client.get(page_url("funnel"), {"date_from": "2025-04-01", "date_to": "2025-03-01"})
    export = client.get(
        page_url("funnel"), {"date_from": "2025-04-01", "date_to": "2025-03-01", "format": "csv"}
    )
    garbage = client.get(page_url("score"), {"date_from": "yesterday"})

    assert response.status_code == 400
    assert "Make this on or after the start of the range." in response.content.decode()
    assert export.status_code == 400
    assert b"date_to:" in export.content
    assert garbage.status_code == 400
    assert "Enter a valid date." in garbage.content.decode()


def test_unknown_table_and_report(client, world, manager):
    client.force_login(manager)

    assert client.get(page_url("funnel"), {"format": "csv", "table": "nope"}).status_code == 400
    assert client.get("/reports/nope/").status_code == 404


@pytest.mark.parametrize("slug", [None, *SLUGS])
def test_outsider_is_refused_and_anonymous_sent_to_log_in(client, world, outsider, slug):
    anonymous = client.get(page_url(slug))
    assert anonymous.status_code == 302
    assert anonymous["Location"].startswith(reverse("login"))

    client.force_login(outsider)

    assert client.get(page_url(slug), MARCH).status_code == 403
    assert client.get(page_url(slug), {**MARCH, "format": "csv"}).status_code == 403


def test_navigation_links_to_the_reports(client, world, rep):
    client.force_login(rep)

    response = client.get(reverse("home"))

    assert f'href="{reverse("reports")}"' in response.content.decode()

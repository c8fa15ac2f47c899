"""The leads list at /leads/: who sees what, filters, sorts, keyset pages, htmx and bulk actions."""

from __future__ import annotations

import datetime as dt
import re

import pytest
from django.core import signing
from django.db import connection
from django.test import Client
from django.utils import timezone

from leads.filters import leads_search
from leads.models import Lead, ProductLine, StageChange
from scoring.models import ScoreEntry
from tests.factories import CompanyFactory, LeadFactory, active_model
from workspace import keyset

pytestmark = pytest.mark.django_db

ROW = re.compile(r'<th scope="row" data-label="Name"><a href="/leads/(\d+)/">')


def ids_in(response) -> list[int]:
    return [int(pk) for pk in ROW.findall(response.content.decode())]


def link(response, rel: str) -> str | None:
    found = re.search(rf'<a rel="{rel}" href="([^"]+)"', response.content.decode())
    return found.group(1).replace("&amp;", "&") if found else None


def client_for(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def world(rep, other_rep, manager):
    """A lead of each rep, one of the manager, and one in the pool, with distinct scores."""
    return {
        "rep": LeadFactory(owner=rep, score=50, first_name="Rita"),
        "other": LeadFactory(owner=other_rep, score=70, first_name="Otto"),
        "manager": LeadFactory(owner=manager, score=60, first_name="Mia"),
        "pool": LeadFactory(owner=None, score=40, first_name="Paul"),
    }


# --- Who sees what ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("persona", "expected"),
    [
        ("rep", ["rep", "pool"]),
        ("other_rep", ["other", "pool"]),
        ("manager", ["other", "manager", "rep", "pool"]),
        ("marketer", ["other", "manager", "rep", "pool"]),
        ("admin_user", ["other", "manager", "rep", "pool"]),
        ("outsider", []),
    ],
)
def test_each_role_lists_exactly_its_leads_hottest_first(request, world, persona, expected):
    user = request.getfixturevalue(persona)

    response = client_for(user).get("/leads/")

    assert response.status_code == 200
    assert ids_in(response) == [world[name].pk for name in expected]


@pytest.mark.parametrize(
    ("persona", "owner", "expected"),
    [
        ("rep", "me", ["rep"]),
        ("rep", "unassigned", ["pool"]),
        ("manager", "me", ["manager"]),
        ("manager", "unassigned", ["pool"]),
        ("admin_user", "me", []),
        ("outsider", "me", []),
        ("outsider", "unassigned", []),
    ],
)
def test_mine_and_unassigned_stay_within_what_the_person_sees(
    request, world, persona, owner, expected
):
    # "Mine" and "Unassigned" start from all leads rather than the visible ones (a
    # plainer query); someone who sees no lead must still see none through them.
    user = request.getfixturevalue(persona)

    response = client_for(user).get(f"/leads/?owner={owner}")

    assert ids_in(response) == [world[name].pk for name in expected]
    pipeline = client_for(user).get(f"/pipeline/?owner={owner}").content.decode()
    for name, lead in world.items():
        assert (f"/leads/{lead.pk}/" in pipeline) == (name in expected)


def test_anonymous_visitor_is_sent_to_log_in():
    response = Client().get("/leads/?band=hot")

    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/?next=/leads/")


def test_a_lead_named_like_a_script_is_escaped(rep):
    LeadFactory(owner=rep, first_name="<script>alert(1)</script>", last_name="")

    body = client_for(rep).get("/leads/").content.decode()

    assert "<script>alert(1)</script>" not in body
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in body


def test_each_row_shows_the_lead_its_company_owner_stage_activity_and_score(rep):
    # Given a taken lead with a company and recent activity, and one in the pool with neither
    changed = dt.datetime(2026, 3, 7, 16, 30, tzinfo=dt.UTC)
    taken = LeadFactory(
        owner=rep,
        first_name="Rita",
        last_name="Ray",
        email="rita@acme.example",
        company=CompanyFactory(name="Acme & Sons"),
        stage="mql",
        stage_changed_at=changed,
        last_activity_at=timezone.now() - dt.timedelta(hours=3),
        score=85,
        band="hot",
        grade="B",
    )
    pooled = LeadFactory(owner=None, company=None, last_activity_at=None, score=5, band="cold")

    body = client_for(rep).get("/leads/").content.decode()

    # Then each cell says it in words, escaped, with machine-readable times
    row = body.split(f'id="select-{taken.pk}"')[1].split("</tr>")[0]
    assert f'<a href="/leads/{taken.pk}/">Rita Ray</a>' in row
    assert '<span class="sub">rita@acme.example</span>' in row
    company = f'<a href="/companies/{taken.company.pk}/">Acme &amp; Sons</a>'
    assert f'<td data-label="Company">{company}</td>' in row
    assert f'<td data-label="Owner">{rep}</td>' in row
    assert '<td data-label="Stage">MQL</td>' in row
    assert '<time datetime="2026-03-07T16:30:00+00:00">7 Mar 2026</time>' in row
    assert re.search(r'<time datetime="[^"]+">3\xa0hours ago</time>', row)
    assert '<span class="band band-hot" title="Hot">85</span>' in row
    assert '<td data-label="Grade">B</td>' in row
    empty = body.split(f'id="select-{pooled.pk}"')[1].split("</tr>")[0]
    assert '<td data-label="Company">—</td>' in empty
    assert '<td data-label="Owner">Unassigned</td>' in empty
    assert '<td data-label="Last activity">Never</td>' in empty


# --- Filters -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("query", "matching", "other"),
    [
        ("band=hot", {"band": "hot"}, {"band": "cold"}),
        ("stage=sql", {"stage": "sql"}, {"stage": "mql"}),
        ("source=event", {"source": "event"}, {"source": "website"}),
        ("grade=A", {"grade": "A"}, {"grade": "C"}),
        ("quadrant=researcher", {"quadrant": "researcher"}, {"quadrant": "cold"}),
        ("score_min=30&score_max=60", {"score": 45}, {"score": 61}),
        ("score_min=30", {"score": 30}, {"score": 29}),
        ("score_max=10", {"score": 10}, {"score": 11}),
    ],
)
def test_each_field_filter_keeps_only_matching_leads(rep, query, matching, other):
    wanted = LeadFactory(owner=rep, **matching)
    LeadFactory(owner=rep, **other)

    response = client_for(rep).get(f"/leads/?{query}")

    assert response.status_code == 200
    assert ids_in(response) == [wanted.pk]


def test_owner_filter_mine_and_unassigned(rep, world):
    client = client_for(rep)

    assert ids_in(client.get("/leads/?owner=me")) == [world["rep"].pk]
    assert ids_in(client.get("/leads/?owner=unassigned")) == [world["pool"].pk]


def test_manager_filters_by_a_teammate(manager, other_rep, world):
    response = client_for(manager).get(f"/leads/?owner={other_rep.pk}")

    assert ids_in(response) == [world["other"].pk]
    assert f'<option value="{other_rep.pk}"' in response.content.decode()


def test_rep_cannot_filter_by_a_teammate_and_sees_no_other_leads(rep, other_rep, world):
    response = client_for(rep).get(f"/leads/?owner={other_rep.pk}")

    assert response.status_code == 400
    assert "Select a valid choice" in response.content.decode()
    assert world["other"].pk not in ids_in(response)
    assert f'<option value="{other_rep.pk}"' not in response.content.decode()


def test_product_interest_filter(rep):
    fleet = ProductLine.objects.create(name="Fleet", slug="fleet")
    wanted = LeadFactory(owner=rep)
    wanted.product_interests.add(fleet)
    LeadFactory(owner=rep)

    assert ids_in(client_for(rep).get("/leads/?product=fleet")) == [wanted.pk]


def test_last_activity_filter(rep):
    now = timezone.now()
    today = LeadFactory(owner=rep, last_activity_at=now - dt.timedelta(hours=2), score=3)
    week = LeadFactory(owner=rep, last_activity_at=now - dt.timedelta(days=5), score=2)
    never = LeadFactory(owner=rep, last_activity_at=None, score=1)
    client = client_for(rep)

    assert ids_in(client.get("/leads/?activity=1")) == [today.pk]
    assert ids_in(client.get("/leads/?activity=7")) == [today.pk, week.pk]
    assert ids_in(client.get("/leads/?activity=none")) == [never.pk]


@pytest.mark.parametrize("term", ["ada", "LOVELACE", "ada.l@analytical", "Engines Ltd"])
def test_search_by_name_email_and_company(rep, term):
    company = CompanyFactory(name="Analytical Engines Ltd")
    wanted = LeadFactory(
        owner=rep,
        first_name="Ada",
        last_name="Lovelace",
        email="ada.l@analytical.example",
        company=company if term == "Engines Ltd" else None,
    )
    LeadFactory(owner=rep, first_name="Charles", last_name="Babbage", email="cb@diff.example")

    assert ids_in(client_for(rep).get("/leads/", {"q": term})) == [wanted.pk]


def test_search_treats_like_wildcards_as_text(rep):
    LeadFactory(owner=rep, first_name="Ann")

    assert ids_in(client_for(rep).get("/leads/", {"q": "%"})) == []
    assert ids_in(client_for(rep).get("/leads/", {"q": "_"})) == []


def test_bad_filter_values_are_reported_and_the_valid_ones_still_apply(rep):
    hot = LeadFactory(owner=rep, band="hot", score=80)
    LeadFactory(owner=rep, band="cold", score=5)

    response = client_for(rep).get("/leads/?band=hot&score_min=10&score_max=5&grade=Z")

    assert response.status_code == 400
    body = response.content.decode()
    assert "Make this at least the lower score." in body
    assert "Select a valid choice" in body
    assert ids_in(response) == [hot.pk]


def test_count_is_exact_beyond_a_page_and_follows_the_filters(rep, other_rep):
    Lead.objects.bulk_create(
        Lead(email=f"warm{n}@example.com", owner=rep, band="warm") for n in range(1003)
    )
    LeadFactory.create_batch(2, owner=rep, band="hot")
    LeadFactory(owner=other_rep, band="warm")  # not the rep's to see

    client = client_for(rep)

    # Past the thousand the page counts with itself, the count comes on its own
    assert "More than 1,000 leads" in client.get("/leads/").content.decode()
    assert (
        '<span id="lead-count">1,005 leads</span>' in client.get("/leads/count/").content.decode()
    )
    warm = client.get("/leads/count/?band=warm").content.decode()
    assert '<span id="lead-count">1,003 leads</span>' in warm
    hot = client.get("/leads/?band=hot&owner=me").content.decode()
    assert '<span id="lead-count">2 leads</span>' in hot


def test_count_of_one_lead_is_singular(rep):
    LeadFactory(owner=rep)

    assert '<span id="lead-count">1 lead</span>' in client_for(rep).get("/leads/").content.decode()


# --- Sorting -----------------------------------------------------------------------------


@pytest.fixture
def sortable(rep):
    now = timezone.now()
    alpha = CompanyFactory(name="Alpha")
    zulu = CompanyFactory(name="Zulu")
    return {
        "a": LeadFactory(
            owner=rep,
            last_name="Adams",
            first_name="Zoe",
            company=zulu,
            score=10,
            last_activity_at=now - dt.timedelta(days=1),
            stage_changed_at=now - dt.timedelta(days=3),
        ),
        "b": LeadFactory(
            owner=rep,
            last_name="Brown",
            first_name="Al",
            company=alpha,
            score=30,
            last_activity_at=None,
            stage_changed_at=now - dt.timedelta(days=1),
        ),
        "c": LeadFactory(
            owner=rep,
            last_name="Clark",
            first_name="Bo",
            company=None,
            score=20,
            last_activity_at=now - dt.timedelta(days=9),
            stage_changed_at=now - dt.timedelta(days=2),
        ),
    }


@pytest.mark.parametrize(
    ("sort", "order"),
    [
        ("", "bca"),
        ("-score", "bca"),
        ("score", "acb"),
        # By the displayed name: "Al Brown", "Bo Clark", "Zoe Adams".
        ("name", "bca"),
        ("-name", "acb"),
        ("company", "bac"),
        ("-company", "abc"),
        ("-last_activity", "acb"),
        ("last_activity", "cab"),
        ("-stage_changed", "bca"),
        ("stage_changed", "acb"),
    ],
)
def test_each_sort_orders_the_rows(rep, sortable, sort, order):
    response = client_for(rep).get("/leads/", {"sort": sort} if sort else {})

    assert ids_in(response) == [sortable[key].pk for key in order]


def test_column_headings_link_to_their_sort_and_say_which_is_active(rep, sortable):
    body = client_for(rep).get("/leads/?band=&sort=name").content.decode()

    assert 'aria-sort="ascending"><a href="/leads/?band=&amp;sort=-name"' in body
    assert 'aria-sort="none"><a href="/leads/?band=&amp;sort=-score"' in body


# --- Keyset pages --------------------------------------------------------------------------


def walk(client, url: str, rel: str) -> list[list[int]]:
    pages = []
    while url:
        response = client.get(url)
        assert response.status_code == 200
        pages.append(ids_in(response))
        url = link(response, rel)
    return pages


@pytest.mark.parametrize("sort", ["-score", "score", "name", "-last_activity", "last_activity"])
def test_pages_forward_and_back_cover_every_lead_once_with_ties(rep, sort):
    # Given 60 leads whose sort keys tie in groups, some without any activity
    now = timezone.now()
    for n in range(60):
        LeadFactory(
            owner=rep,
            score=n % 4,
            last_name=f"Name{n % 3}",
            first_name="Same",
            last_activity_at=None if n % 5 == 0 else now - dt.timedelta(hours=n % 6),
        )
    everyone = [lead.pk for lead in Lead.objects.all()]
    client = client_for(rep)

    # When the list is paged to the end and back to the start
    forward = walk(client, f"/leads/?sort={sort}", "next")
    last_page_url = None
    url = f"/leads/?sort={sort}"
    while url:
        last_page_url = url
        url = link(client.get(url), "next")
    backward = walk(client, last_page_url, "prev")

    # Then every lead shows once, in pages of 25, and going back retraces the same pages
    flat = [pk for page in forward for pk in page]
    assert sorted(flat) == sorted(everyone)
    assert len(flat) == len(set(flat))
    assert [len(page) for page in forward] == [25, 25, 10]
    assert backward == list(reversed(forward))


def test_a_bad_or_foreign_cursor_gives_the_first_page(rep):
    for n in range(30):
        LeadFactory(owner=rep, score=n)
    client = client_for(rep)
    first = ids_in(client.get("/leads/"))
    other_sort = signing.dumps(
        {"s": "name", "v": ["x", "y"], "i": 1, "f": True}, salt=keyset.CURSOR_SALT
    )
    wrong_types = signing.dumps({"s": "-score", "v": ["high"], "i": 1, "f": True}, salt="x")
    bad_values = signing.dumps(
        {"s": "-score", "v": ["high"], "i": "1", "f": True}, salt=keyset.CURSOR_SALT
    )

    for cursor in ["garbage", "", other_sort, wrong_types, bad_values, "a" * 500]:
        response = client.get("/leads/", {"cursor": cursor})
        assert response.status_code == 200
        assert ids_in(response) == first


def test_changing_a_filter_drops_the_cursor(rep):
    for n in range(30):
        LeadFactory(owner=rep, score=n)
    response = client_for(rep).get("/leads/")
    next_url = link(response, "next")

    body = client_for(rep).get(next_url).content.decode()

    assert 'action="/leads/"' in body
    assert 'name="cursor"' not in body


# --- htmx -----------------------------------------------------------------------------------


def test_htmx_request_gets_the_results_partial(rep, world):
    response = client_for(rep).get("/leads/?band=cold", HTTP_HX_REQUEST="true")

    body = response.content.decode()
    assert response.status_code == 200
    assert "<html" not in body
    assert 'class="lead-table"' in body
    assert ids_in(response) == [world["rep"].pk, world["pool"].pk]
    assert "HX-Request" in response["Vary"]


def test_full_page_has_the_filter_form_that_submits_without_javascript(rep):
    body = client_for(rep).get("/leads/").content.decode()

    assert '<form id="lead-filters"' in body
    assert 'method="get" action="/leads/"' in body
    assert 'hx-push-url="true"' in body
    assert '<label for="id_q">Search</label>' in body


def test_history_restore_gets_the_full_page(rep):
    response = client_for(rep).get(
        "/leads/", HTTP_HX_REQUEST="true", HTTP_HX_HISTORY_RESTORE_REQUEST="true"
    )

    assert "<html" in response.content.decode()


# --- Query counts -----------------------------------------------------------------------------


@pytest.mark.parametrize("rows", [3, 40])
def test_list_runs_a_fixed_number_of_queries(manager, rep, django_assert_max_num_queries, rows):
    fleet = ProductLine.objects.create(name="Fleet", slug="fleet")
    for n in range(rows):
        lead = LeadFactory(owner=rep if n % 2 else None, score=n)
        lead.product_interests.add(fleet)
    client = client_for(manager)
    client.get("/leads/")

    # The session and user, the list's people, product lines and sequences, the count,
    # the page, the saved views menu and the rest of the frame: none per row.
    with django_assert_max_num_queries(14):
        response = client.get("/leads/?q=a&product=fleet&sort=company")

    assert response.status_code == 200


# --- Bulk actions -------------------------------------------------------------------------------


def test_manager_assigns_selected_leads_to_a_rep(manager, rep, world):
    client = client_for(manager)
    picked = [world["pool"].pk, world["other"].pk]

    response = client.post(
        "/leads/bulk/?band=cold", {"action": "assign", "owner": rep.pk, "lead": picked}
    )

    assert response.status_code == 302
    assert response["Location"] == "/leads/?band=cold"
    assert set(Lead.objects.filter(owner=rep).values_list("pk", flat=True)) == {
        world["rep"].pk,
        *picked,
    }
    assert "2 leads assigned to" in client.get(response["Location"]).content.decode()


def test_manager_cannot_assign_to_someone_outside_the_team(manager, world, outsider):
    response = client_for(manager).post(
        "/leads/bulk/", {"action": "assign", "owner": outsider.pk, "lead": [world["pool"].pk]}
    )

    assert response.status_code == 400
    assert Lead.objects.get(pk=world["pool"].pk).owner is None


def test_rep_takes_unassigned_leads_and_is_told_about_the_rest(rep, world):
    picked = [world["pool"].pk, world["rep"].pk, world["other"].pk]

    response = client_for(rep).post("/leads/bulk/", {"action": "take", "lead": picked}, follow=True)

    body = response.content.decode()
    assert Lead.objects.get(pk=world["pool"].pk).owner == rep
    assert Lead.objects.get(pk=world["other"].pk).owner != rep
    assert "1 lead assigned to you; 2 could not" in body
    assert "already yours" in body
    assert "not found among the leads you can see" in body
    assert "Otto" not in body


def test_rep_cannot_assign_to_someone_else(rep, other_rep, world):
    response = client_for(rep).post(
        "/leads/bulk/", {"action": "assign", "owner": other_rep.pk, "lead": [world["pool"].pk]}
    )

    assert response.status_code == 400
    assert Lead.objects.get(pk=world["pool"].pk).owner is None


def test_bulk_stage_move_reports_refused_leads_and_moves_the_rest(rep):
    movable = LeadFactory(owner=rep, stage="mql", first_name="Mo", last_name="Vable")
    customer = LeadFactory(owner=rep, stage="customer", first_name="Cus", last_name="Tomer")
    pool = LeadFactory(owner=None, stage="mql", first_name="Po", last_name="Ol")

    response = client_for(rep).post(
        "/leads/bulk/",
        {"action": "stage", "stage": "sql", "lead": [movable.pk, customer.pk, pool.pk]},
        follow=True,
    )

    body = response.content.decode()
    assert "1 lead moved to SQL; 2 could not" in body
    assert "Cus Tomer (A lead cannot move from Customer to SQL.)" in body
    assert "Po Ol (unassigned: take it first)" in body
    assert Lead.objects.get(pk=movable.pk).stage == "sql"
    assert Lead.objects.get(pk=customer.pk).stage == "customer"
    assert Lead.objects.get(pk=pool.pk).stage == "mql"
    assert StageChange.objects.filter(lead=movable, by=rep).count() == 1


def test_bulk_nurture_enrollment_reports_refused_leads_and_enrolls_the_rest(rep):
    from nurturing.models import Enrollment, Sequence, SequenceStatus

    sequence = Sequence.objects.create(name="Warm: case studies", status=SequenceStatus.ACTIVE)
    mine = LeadFactory(owner=rep, first_name="Mi", last_name="Ne")
    gone = LeadFactory(owner=rep, first_name="Un", last_name="Sub", email_status="unsubscribed")
    pool = LeadFactory(owner=None, first_name="Po", last_name="Ol")
    Enrollment.objects.create(lead=LeadFactory(owner=rep), sequence=sequence)

    response = client_for(rep).post(
        "/leads/bulk/",
        {"action": "nurture", "sequence": sequence.pk, "lead": [mine.pk, gone.pk, pool.pk]},
        follow=True,
    )

    body = response.content.decode()
    assert "1 lead enrolled in “Warm: case studies”; 2 could not" in body
    assert "Po Ol (unassigned: take it first)" in body
    assert "Un Sub (" in body
    assert set(
        Enrollment.objects.filter(lead__in=[mine, gone, pool]).values_list("lead", flat=True)
    ) == {mine.pk}
    assert Enrollment.objects.get(lead=mine).source == "manual"


def test_bulk_nurture_needs_a_sequence(rep):
    lead = LeadFactory(owner=rep)

    response = client_for(rep).post("/leads/bulk/", {"action": "nurture", "lead": [lead.pk]})

    assert response.status_code == 400
    assert "Choose the sequence to enroll the leads in." in response.content.decode()


def test_bulk_disqualify_needs_a_reason(rep):
    lead = LeadFactory(owner=rep, stage="mql")

    response = client_for(rep).post(
        "/leads/bulk/", {"action": "stage", "stage": "disqualified", "lead": [lead.pk]}
    )

    assert response.status_code == 400
    assert "Say why the leads are disqualified." in response.content.decode()
    assert Lead.objects.get(pk=lead.pk).stage == "mql"


def test_manager_adjusts_scores_with_a_reason_in_the_ledger(manager, rep):
    active_model()
    lead = LeadFactory(owner=rep)

    response = client_for(manager).post(
        "/leads/bulk/",
        {"action": "score", "points": "15", "reason": "Met at the fair", "lead": [lead.pk]},
        follow=True,
    )

    assert "1 lead adjusted by +15 points." in response.content.decode()
    entry = ScoreEntry.objects.get(lead=lead, kind="manual")
    assert entry.points == 15
    assert "Met at the fair" in entry.reason
    assert Lead.objects.get(pk=lead.pk).score == 15


def test_score_adjustment_needs_points_and_reason(manager, rep):
    lead = LeadFactory(owner=rep)

    response = client_for(manager).post(
        "/leads/bulk/", {"action": "score", "points": "0", "reason": " ", "lead": [lead.pk]}
    )

    body = response.content.decode()
    assert response.status_code == 400
    assert "Give a non-zero number of points." in body
    assert "Say why the score is adjusted." in body
    assert not ScoreEntry.objects.filter(lead=lead).exists()


@pytest.mark.parametrize("persona", ["rep", "marketer", "outsider"])
def test_only_managers_and_admins_adjust_scores(request, persona, rep):
    active_model()
    lead = LeadFactory(owner=rep)

    response = client_for(request.getfixturevalue(persona)).post(
        "/leads/bulk/", {"action": "score", "points": "5", "reason": "x", "lead": [lead.pk]}
    )

    assert response.status_code == 400
    assert not ScoreEntry.objects.filter(lead=lead).exists()


def test_outsider_changes_nothing_in_bulk(outsider, world):
    response = client_for(outsider).post(
        "/leads/bulk/", {"action": "stage", "stage": "sql", "lead": [world["pool"].pk]}
    )

    assert response.status_code == 400
    assert Lead.objects.get(pk=world["pool"].pk).stage == "new"


def test_bulk_without_selection_says_so(rep):
    response = client_for(rep).post("/leads/bulk/", {"action": "take"})

    assert response.status_code == 400
    assert "Select at least one lead." in response.content.decode()


@pytest.mark.parametrize("value", ["abc", "-1", "99999999999999999999999"])
def test_bulk_with_a_junk_selection_is_refused(rep, value):
    response = client_for(rep).post("/leads/bulk/", {"action": "take", "lead": [value]})

    assert response.status_code == 400


def test_bulk_via_htmx_swaps_the_results_with_the_outcome(rep, world):
    response = client_for(rep).post(
        "/leads/bulk/?owner=unassigned",
        {"action": "take", "lead": [world["pool"].pk]},
        HTTP_HX_REQUEST="true",
    )

    body = response.content.decode()
    assert response.status_code == 200
    assert "<html" not in body
    assert "1 lead assigned to you." in body
    assert ids_in(response) == []


def test_bulk_post_needs_the_csrf_token(rep, world):
    client = Client(enforce_csrf_checks=True)
    client.force_login(rep)

    response = client.post("/leads/bulk/", {"action": "take", "lead": [world["pool"].pk]})

    assert response.status_code == 403
    assert Lead.objects.get(pk=world["pool"].pk).owner is None


def test_list_form_carries_the_csrf_token_for_bulk_actions(rep, world):
    body = client_for(rep).get("/leads/").content.decode()

    assert 'name="csrfmiddlewaretoken"' in body
    assert f'name="lead" value="{world["rep"].pk}" form="bulk-form"' in body


# --- PostgreSQL ---------------------------------------------------------------------------------


@pytest.mark.postgres
def test_search_uses_the_trigram_indexes_on_postgresql(rep):
    # Given enough leads that the planner prefers an index to a scan
    Lead.objects.bulk_create(
        Lead(email=f"person{n}@example.com", first_name=f"First{n}", last_name=f"Last{n}")
        for n in range(3000)
    )
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE leads_lead")
        cursor.execute("ANALYZE leads_company")

    # When the search query is explained
    queryset = leads_search(Lead.objects.all(), "person2999@")
    with connection.cursor() as cursor:
        cursor.execute("SET enable_seqscan = off")
        plan = queryset.explain()
        cursor.execute("RESET enable_seqscan")

    # Then it reads the trigram index on the email
    assert "lead_email_trgm_idx" in plan

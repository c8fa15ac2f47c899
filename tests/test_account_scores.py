"""Account scores: a company's score per model from its people's scores, the formula on
plain values, the set-based refresh held to it, kept up to date by scoring, nightly and
by the ``accounts_score`` command."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.db import connection

from leads.activities import activities_record
from leads.models import Activity, ActivityType, Company
from scoring.account_formula import Contact, account_state, engagement_now
from scoring.accounts import accounts_refresh, accounts_refresh_all
from scoring.lead_scoring import lead_score, leads_score
from scoring.models import AccountScore, LeadScore, ModelStatus, ScoringModel
from scoring.score_formula import Thresholds
from scoring.tasks import refresh_account_scores
from tests.factories import CompanyFactory, LeadFactory, active_model, fit_rule, page_rule

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
PRICING = "https://hotlist.example/pricing"
SCALE = Thresholds(hot=70, warm=30, engaged=20, base=5, fit_cap=40, engagement_cap=50)


# --- The formula on plain values --------------------------------------------------------


def contact(fit: float, engagement: float, days_ago: float = 0, adjustment: float = 0) -> Contact:
    return Contact(fit, adjustment, engagement, T0 - timedelta(days=days_ago))


def test_account_takes_the_best_fit_and_sums_the_engagement_decayed():
    state = account_state(
        [contact(25, 20, days_ago=10), contact(10, 16)],
        now=T0,
        half_life_days=10,
        thresholds=SCALE,
    )

    assert state is not None
    assert state.best_fit == 25
    assert state.engagement == pytest.approx(20 * 0.5 + 16)
    assert state.score == 5 + 25 + 26
    assert state.band == "warm"


def test_engaged_contacts_count_the_people_at_the_models_engaged_threshold_now():
    people = [contact(0, 40, days_ago=10), contact(0, 20), contact(0, 19.9), contact(0, 80, 30)]

    state = account_state(people, now=T0, half_life_days=10, thresholds=SCALE)

    # 40 halved is 20 (engaged), 20 is, 19.9 is not, 80 after three half-lives is 10
    assert state is not None
    assert state.engaged_contacts == 2


def test_account_score_keeps_to_the_models_caps_and_maximum():
    people = [contact(55, 0, adjustment=5), contact(0, 45), contact(0, 45)]
    capped = Thresholds(**{**SCALE.__dict__, "max_points": 90})

    state = account_state(people, now=T0, half_life_days=None, thresholds=capped)

    assert state is not None
    assert state.best_fit == 40  # 60 with the adjustment, up to the fit cap
    assert state.engagement == 90  # the sum is kept; the score counts 50 of it
    assert state.score == 90  # 5 + 40 + 50 = 95, up to the maximum
    assert state.band == "hot"


def test_negative_fit_and_engagement_count_as_they_do_for_a_lead():
    state = account_state(
        [contact(-10, -5), contact(-20, 2)], now=T0, half_life_days=None, thresholds=SCALE
    )

    assert state is not None
    assert (state.best_fit, state.engagement, state.score, state.band) == (-10, -3, -8, "cold")


def test_an_account_without_people_has_no_state():
    assert account_state([], now=T0, half_life_days=7, thresholds=SCALE) is None


def test_stored_engagement_carries_forward_like_each_leads():
    people = [contact(0, 30, days_ago=3), contact(0, 12, days_ago=1)]
    today = account_state(people, now=T0, half_life_days=7, thresholds=SCALE)
    later = account_state(people, now=T0 + timedelta(days=9), half_life_days=7, thresholds=SCALE)

    assert today is not None
    assert later is not None
    carried = engagement_now(today.engagement, T0, T0 + timedelta(days=9), 7)
    assert carried == pytest.approx(later.engagement)


# --- Set-based, in the database ----------------------------------------------------------


def world(db) -> tuple[ScoringModel, list[Company]]:
    """A model with fit and engagement rules and decay; three companies, one without
    people, and leads scored at different times."""
    model = active_model(
        decay_half_life_days=5,
        engaged_from=15,
        hot_from=60,
        warm_from=25,
        base_score=2,
        engagement_cap=45,
        surge_points=0,
    )
    fit_rule(model, 20, "job_title", "contains", "head")
    fit_rule(model, 10, "country", "equals", "DE")
    page_rule(model, 12, "/pricing")
    acme, globex, empty = CompanyFactory(), CompanyFactory(), CompanyFactory()
    plan = [
        (acme, "Head of Sales", "DE", 3, 0),
        (acme, "Intern", "FR", 1, 4),
        (acme, "Head of IT", "NL", 0, 0),
        (globex, "Buyer", "DE", 2, 8),
        (globex, "Buyer", "DE", 0, 0),
    ]
    for company, title, country, views, days_ago in plan:
        lead = LeadFactory(company=company, job_title=title, country=country)
        at = T0 - timedelta(days=days_ago)
        for _ in range(views):
            Activity.objects.create(
                lead=lead, type=ActivityType.PAGE_VIEW, url=PRICING, occurred_at=at
            )
        leads_score(lead_ids=[lead.pk], now=at)
    LeadFactory(company=None)  # scored below, belongs to no account
    return model, [acme, globex, empty]


def reference(company: Company, model: ScoringModel, now: datetime):
    """The account state from the company's leads' stored scores, by the pure formula."""
    rows = LeadScore.objects.filter(lead__company=company, model=model)
    people = [Contact(r.fit, r.adjustment, r.engagement, r.engagement_at) for r in rows]
    return account_state(
        people, now=now, half_life_days=model.decay_half_life_days, thresholds=model.thresholds
    )


@pytest.mark.django_db
def test_nightly_refresh_equals_the_formula_for_every_company(db, settings):
    settings.SCORING_ACCOUNT_RANGE = 2  # several ranges
    model, companies = world(db)
    later = T0 + timedelta(days=3)

    written = accounts_refresh_all(now=later)

    assert written == 2
    for company in companies[:2]:
        expected = reference(company, model, later)
        row = AccountScore.objects.get(company=company, model=model)
        assert row.best_fit == pytest.approx(expected.best_fit)
        assert row.engagement == pytest.approx(expected.engagement)
        assert row.engaged_contacts == expected.engaged_contacts
        assert (row.score, row.band) == (expected.score, expected.band)
        assert row.engagement_at == later
        assert row.conversion_probability is None
    assert not AccountScore.objects.filter(company=companies[2]).exists()


@pytest.mark.django_db
def test_a_leads_scoring_event_brings_its_companys_account_score_up_to_date(
    django_capture_on_commit_callbacks,
):
    model = active_model(engaged_from=10, surge_points=0)
    page_rule(model, 12, "/pricing")
    acme = CompanyFactory()
    quiet, busy = LeadFactory(company=acme), LeadFactory(company=acme)
    other = LeadFactory()
    leads_score(lead_ids=[quiet.pk, busy.pk, other.pk])
    before = AccountScore.objects.get(company=acme, model=model)
    assert (before.engagement, before.engaged_contacts, before.score) == (0, 0, 0)
    elsewhere = AccountScore.objects.get(company=other.company, model=model).updated_at

    # as the API stores an activity: scored after commit, by the real-time task
    with django_capture_on_commit_callbacks(execute=True):
        activities_record(
            lead=busy, activities=[Activity(type=ActivityType.PAGE_VIEW, url=PRICING)]
        )

    after = AccountScore.objects.get(company=acme, model=model)
    assert (after.engagement, after.engaged_contacts, after.score) == (12, 1, 12)
    assert after.updated_at > before.updated_at
    assert AccountScore.objects.get(company=other.company, model=model).updated_at == elsewhere


@pytest.mark.django_db
def test_an_account_leaves_a_model_none_of_its_people_is_scored_in_any_more():
    model = active_model(surge_points=0)
    lead = LeadFactory()
    lead_score(lead_id=lead.pk)
    assert AccountScore.objects.filter(company=lead.company, model=model).exists()

    ScoringModel.objects.filter(pk=model.pk).update(status=ModelStatus.ARCHIVED)
    accounts_refresh(company_ids=[lead.company_id])

    assert not AccountScore.objects.filter(company=lead.company).exists()


@pytest.mark.django_db
def test_nightly_refresh_removes_the_rows_of_a_company_deleted_and_keeps_the_probability():
    model = active_model(surge_points=0)
    kept, gone = LeadFactory(), LeadFactory()
    leads_score(lead_ids=[kept.pk, gone.pk])
    AccountScore.objects.filter(company=kept.company).update(conversion_probability=0.4)
    Company.objects.filter(pk=gone.company_id).delete()
    AccountScore.objects.create(company_id=gone.company_id + 1000, model=model)  # left over

    refresh_account_scores.run()

    assert list(AccountScore.objects.values_list("company_id", "conversion_probability")) == [
        (kept.company_id, 0.4)
    ]


@pytest.mark.django_db
def test_accounts_score_command_sums_every_company_or_the_ones_named():
    model = active_model(surge_points=0)
    page_rule(model, 7, "/pricing")
    lead = LeadFactory()
    Activity.objects.create(lead=lead, type=ActivityType.PAGE_VIEW, url=PRICING)
    leads_score(lead_ids=[lead.pk])
    AccountScore.objects.all().delete()
    out = StringIO()

    call_command("accounts_score", stdout=out)

    assert "1 account score(s) written." in out.getvalue()
    assert AccountScore.objects.get(company=lead.company).score == 7

    AccountScore.objects.update(score=0)
    call_command("accounts_score", "--company", str(lead.company_id), stdout=StringIO())
    assert AccountScore.objects.get(company=lead.company).score == 7


@pytest.mark.django_db
def test_accounts_score_command_refuses_a_company_that_does_not_exist():
    lead = LeadFactory()
    active_model(surge_points=0)
    lead_score(lead_id=lead.pk)
    AccountScore.objects.update(score=55)

    with pytest.raises(CommandError, match="No company 999999"):
        call_command("accounts_score", "--company", str(lead.company_id), "--company", "999999")

    assert AccountScore.objects.get().score == 55  # nothing done


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_a_set_based_rescore_sums_the_accounts_of_the_leads_it_touched():
    from scoring.rescore_jobs import model_rescore_in_process

    assert connection.vendor == "postgresql"
    model = active_model(surge_points=0, engaged_from=5)
    acme = CompanyFactory()
    people = [LeadFactory(company=acme, job_title="Head of Sales") for _ in range(3)]
    for lead in people[:2]:
        Activity.objects.create(lead=lead, type=ActivityType.PAGE_VIEW, url=PRICING)
    leads_score(lead_ids=[lead.pk for lead in people])
    fit_rule(model, 20, "job_title", "contains", "head")
    page_rule(model, 6, "/pricing")

    model_rescore_in_process(model=model, reason="rules added")

    row = AccountScore.objects.get(company=acme, model=model)
    assert (row.best_fit, row.engagement, row.engaged_contacts, row.score) == (20, 12, 2, 32)


def _running_job(model, ranges: int):
    from scoring.models import RescoreJob

    job = RescoreJob.objects.create(model=model, reason="rule added", total=ranges, ranges=ranges)
    RescoreJob.objects.filter(pk=job.pk).update(status="running")
    return job


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_a_rescore_range_touching_many_companies_leaves_them_to_one_sum_at_the_jobs_end(
    django_capture_on_commit_callbacks, settings
):
    """A company's people spread over the job's ranges: each range would sum the whole
    company again. Past ``SCORING_ACCOUNTS_INLINE`` companies a range leaves the accounts,
    and the job's end sums each once."""
    from scoring.models import RescoreJob
    from scoring.rescore_jobs import rescore_job_range

    settings.SCORING_ACCOUNTS_INLINE = 0
    model = active_model(surge_points=0)
    acme = CompanyFactory()
    people = [LeadFactory(company=acme, job_title="Head of Sales") for _ in range(2)]
    leads_score(lead_ids=[lead.pk for lead in people])
    fit_rule(model, 20, "job_title", "contains", "head")
    job = _running_job(model, ranges=2)

    rescore_job_range(job_id=job.pk, lo=people[0].pk, hi=people[0].pk)

    assert LeadScore.objects.get(lead=people[0], model=model).fit == 20
    assert AccountScore.objects.get(company=acme, model=model).best_fit == 0
    assert RescoreJob.objects.get(pk=job.pk).accounts_pending

    with django_capture_on_commit_callbacks(execute=True):
        rescore_job_range(job_id=job.pk, lo=people[1].pk, hi=people[1].pk)

    assert RescoreJob.objects.get(pk=job.pk).status == "done"
    assert AccountScore.objects.get(company=acme, model=model).best_fit == 20


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_a_rescore_touching_few_companies_sums_them_in_its_ranges_and_no_others(
    django_capture_on_commit_callbacks, settings
):
    """A rule change that touched a few leads costs a few accounts: each range sums its
    own companies, and the job's end queues no pass over every company (a company the
    change did not touch keeps its row as it was)."""
    from scoring.models import RescoreJob
    from scoring.rescore_jobs import rescore_job_range

    settings.SCORING_ACCOUNTS_INLINE = 5
    model = active_model(surge_points=0)
    acme, other = CompanyFactory(), CompanyFactory()
    heads = [LeadFactory(company=acme, job_title="Head of Sales") for _ in range(2)]
    bystander = LeadFactory(company=other, job_title="Intern")
    leads_score(lead_ids=[lead.pk for lead in (*heads, bystander)])
    AccountScore.objects.filter(company=other).update(best_fit=7)  # a pass would reset it
    fit_rule(model, 20, "job_title", "contains", "head")
    job = _running_job(model, ranges=2)

    rescore_job_range(job_id=job.pk, lo=heads[0].pk, hi=heads[0].pk)
    assert AccountScore.objects.get(company=acme, model=model).best_fit == 20

    with django_capture_on_commit_callbacks(execute=True):
        rescore_job_range(job_id=job.pk, lo=heads[1].pk, hi=heads[1].pk)

    finished = RescoreJob.objects.get(pk=job.pk)
    assert (finished.status, finished.accounts_pending) == ("done", False)
    assert AccountScore.objects.get(company=other, model=model).best_fit == 7


@pytest.mark.django_db
def test_merging_two_scored_companies_sums_the_survivors_account_from_all_its_people():
    from leads.company_merging import companies_merge

    model = active_model(surge_points=0)
    page_rule(model, 10, "/pricing")
    survivor, merged = CompanyFactory(), CompanyFactory()
    people = [LeadFactory(company=survivor), LeadFactory(company=merged)]
    for lead in people:
        Activity.objects.create(lead=lead, type=ActivityType.PAGE_VIEW, url=PRICING)
    leads_score(lead_ids=[lead.pk for lead in people])
    assert AccountScore.objects.count() == 2

    companies_merge(survivor_id=survivor.pk, others=[merged.pk])

    row = AccountScore.objects.get()
    assert (row.company_id, row.engagement, row.score) == (survivor.pk, 20, 20)


@pytest.mark.django_db
def test_admin_company_list_shows_and_sorts_by_account_score(client, marketer):
    from django.urls import reverse

    model = active_model(surge_points=0, base_score=5)
    page_rule(model, 10, "/pricing")
    low, high, unscored = CompanyFactory(), CompanyFactory(), CompanyFactory()
    keen = LeadFactory(company=high)
    Activity.objects.create(lead=keen, type=ActivityType.PAGE_VIEW, url=PRICING)
    leads_score(lead_ids=[LeadFactory(company=low).pk, keen.pk])
    marketer.is_staff = True
    marketer.save(update_fields=["is_staff"])
    client.force_login(marketer)
    url = reverse("admin:leads_company_changelist")

    def order(sort: str) -> list[Company]:
        page = client.get(url, {"o": sort})
        assert page.status_code == 200
        return [c for c in page.context["cl"].result_list if c != unscored]

    assert order("6") == [low, high]
    assert order("-6") == [high, low]
    body = client.get(url).content.decode()
    assert "Account score" in body
    assert '<td class="field-account_score">5</td>' in body
    assert '<td class="field-account_score">15</td>' in body
    assert '<td class="field-account_score">—</td>' in body


@pytest.mark.django_db
def test_a_nurture_sequence_takes_only_leads_of_accounts_scoring_at_least_its_minimum():
    from nurturing.enrollment import sequences_enroll_matching
    from nurturing.models import Enrollment
    from tests.test_nurture_sending import email_sequence

    model = active_model(surge_points=0)
    page_rule(model, 20, "/pricing")
    keen, quiet = CompanyFactory(), CompanyFactory()
    busy = LeadFactory(company=keen, email_status="valid")
    colleague = LeadFactory(company=keen, email_status="valid")
    elsewhere = LeadFactory(company=quiet, email_status="valid")
    alone = LeadFactory(company=None, email_status="valid")
    for _ in range(2):
        Activity.objects.create(lead=busy, type=ActivityType.PAGE_VIEW, url=PRICING)
    Activity.objects.create(lead=elsewhere, type=ActivityType.PAGE_VIEW, url=PRICING)
    leads_score(lead_ids=[busy.pk, colleague.pk, elsewhere.pk, alone.pk])
    sequence = email_sequence("Accounts in play", stages=[], min_account_score=30)

    sequences_enroll_matching()

    # keen's account is 40 (its people's 40 + 0), quiet's 20; a lead without a company
    # has no account score
    enrolled = set(Enrollment.objects.filter(sequence=sequence).values_list("lead", flat=True))
    assert enrolled == {busy.pk, colleague.pk}


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_two_transactions_scoring_people_of_one_company_lose_neither_ones_engagement():
    import threading

    from django.db import connections, transaction

    model = active_model(surge_points=0)
    page_rule(model, 10, "/pricing")
    acme = CompanyFactory()
    first, second = LeadFactory(company=acme), LeadFactory(company=acme)
    leads_score(lead_ids=[first.pk, second.pk])
    for lead in (first, second):
        Activity.objects.create(lead=lead, type=ActivityType.PAGE_VIEW, url=PRICING)
    holding, errors = threading.Event(), []

    def score_and_hold() -> None:
        # Scores the first lead and keeps its transaction open until the other waits.
        try:
            with transaction.atomic():
                leads_score(lead_ids=[first.pk])
                holding.set()
                waiter = connections["default"].cursor()
                for _ in range(100):  # until the second transaction waits for a lock
                    waiter.execute(
                        "SELECT count(*) FROM pg_stat_activity "
                        "WHERE wait_event_type = 'Lock' AND datname = current_database()"
                    )
                    if waiter.fetchone()[0]:
                        break
                    threading.Event().wait(0.05)
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)
        finally:
            connections.close_all()

    thread = threading.Thread(target=score_and_hold)
    thread.start()
    holding.wait(10)
    leads_score(lead_ids=[second.pk])
    thread.join(10)

    assert errors == []
    row = AccountScore.objects.get(company=acme)
    assert (row.engagement, row.engaged_contacts, row.score) == (20, 0, 20)

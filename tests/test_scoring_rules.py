"""The pure scoring math: operators, rule validation, caps, bonus, windows, decay and bands.

No database: ``scoring.rules``, ``scoring.conditions``, ``scoring.rule_fields`` and
``scoring.score_formula`` work on plain values.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from scoring.conditions import condition_matches, validate_condition
from scoring.rule_fields import BOOL, LIST, NUMBER, OPERATORS_BY_KIND, TEXT, RuleError, field_kind
from scoring.rules import (
    ENGAGEMENT,
    FIT,
    ActivityFact,
    Award,
    RuleSpec,
    activity_matches,
    engagement_awards,
    fit_awards,
)
from scoring.score_formula import (
    SECONDS_PER_DAY,
    Thresholds,
    band_for,
    decay_factor,
    decayed,
    engagement_at,
    grade_for,
    history_entries,
    idle_penalty,
    quadrant_for,
    score_series,
    total_score,
)

NOW = datetime(2025, 3, 12, 15, 0, tzinfo=UTC)
DAY1 = datetime(2025, 3, 10, 9, 0, tzinfo=UTC)
DAY2 = datetime(2025, 3, 11, 9, 0, tzinfo=UTC)
DAY3 = datetime(2025, 3, 12, 9, 0, tzinfo=UTC)
LISTS = {"free_mail": frozenset({"gmail.com", "web.de"}), "competitor": frozenset({"rival.io"})}


def act(
    pk: int,
    at: datetime,
    type_: str = "page_view",
    url: str = "https://hotlist.example/pricing",
    duration: int | None = None,
    **properties,
) -> ActivityFact:
    return ActivityFact(
        id=pk, type=type_, occurred_at=at, url=url, duration_seconds=duration, properties=properties
    )


def eng(**fields) -> RuleSpec:
    values = {
        "id": 1,
        "kind": ENGAGEMENT,
        "points": 10,
        "description": "page view",
        "activity_type": "page_view",
    }
    values.update(fields)
    return RuleSpec(**values)


def burst(first_pk: int, day: datetime, count: int) -> list[ActivityFact]:
    """``count`` page views on one day, a minute apart."""
    return [act(first_pk + i, day + timedelta(minutes=i)) for i in range(count)]


def regular(awards: list[Award]) -> list[int | None]:
    return [a.activity_id for a in awards if not a.bonus]


def bonuses(awards: list[Award]) -> list[int | None]:
    return [a.activity_id for a in awards if a.bonus]


# --- condition_matches: every operator per field kind -----------------------------------

TEXT_CASES = [
    ("equals", "Head of IT", "head of it", True),
    ("equals", "  CTO ", "cto", True),
    ("equals", "CTO", "CEO", False),
    ("not_equals", "CTO", "ceo", True),
    ("not_equals", "CTO", "cto", False),
    ("in", "de, AT ,ch", "at", True),
    ("in", "DE,AT,CH", "Ch", True),
    ("in", "de,at,ch", "fr", False),
    ("in", "de,at", "d", False),
    ("not_in", "de, at", "FR", True),
    ("not_in", "de, at", "AT", False),
    ("contains", "Head", "Global HEAD of Sales", True),
    ("contains", "head", "VP Sales", False),
    ("not_contains", "intern", "VP Sales", True),
    ("not_contains", "intern", "Marketing INTERN", False),
    ("starts_with", "vp", "VP Sales", True),
    ("starts_with", "sales", "VP Sales", False),
    ("ends_with", "SALES", "VP sales", True),
    ("ends_with", "vp", "VP sales", False),
    ("regex", r"^(vp|chief)\b", "Chief Revenue Officer", True),
    ("regex", r"^(vp|chief)\b", "Vice President", False),
    ("regex", r"OFFICER$", "chief officer", True),
    ("is_empty", "", "", True),
    ("is_empty", "", "   ", True),
    ("is_empty", "", None, True),
    ("is_empty", "", "x", False),
    ("not_empty", "", "x", True),
    ("not_empty", "", None, False),
    ("not_empty", "", " ", False),
]


@pytest.mark.parametrize(("operator", "value", "actual", "expected"), TEXT_CASES)
def test_text_operator_compares_ignoring_case_and_blanks(operator, value, actual, expected):
    # Given a text condition and a lead's value
    # When the condition is tested
    matched = condition_matches(TEXT, operator, value, "", actual)

    # Then it matches exactly when the operator says so, whatever the case
    assert matched is expected


@pytest.mark.parametrize(
    ("actual", "list_name", "expected"),
    [
        ("ann@GMAIL.com", "free_mail", True),
        ("Bob@web.de", "free_mail", True),
        ("gmail.com", "free_mail", True),
        ("carl@acme.com", "free_mail", False),
        ("dora@rival.io", "competitor", True),
        ("dora@rival.io", "free_mail", False),
        ("eve@gmail.com.evil.io", "free_mail", False),
        ("fred@gmail.com", "disposable", False),
        ("", "free_mail", False),
    ],
)
def test_in_domain_list_tests_the_domain_of_an_email_address(actual, list_name, expected):
    # Given named domain lists and an email (or bare domain)
    # When the email is tested against a list
    matched = condition_matches(TEXT, "in_domain_list", list_name, "", actual, LISTS)

    # Then only a domain on that very list matches
    assert matched is expected


NUMBER_CASES = [
    ("equals", "50", "", 50, True),
    ("equals", "50", "", "50.0", True),
    ("equals", "50", "", 51, False),
    ("not_equals", "50", "", 51, True),
    ("not_equals", "50", "", 50, False),
    ("not_equals", "50", "", None, True),
    ("gt", "100", "", 101, True),
    ("gt", "100", "", 100, False),
    ("gte", "100", "", 100, True),
    ("gte", "100", "", 99.5, False),
    ("lt", "10", "", 9, True),
    ("lt", "10", "", 10, False),
    ("lte", "10", "", 10, True),
    ("lte", "10", "", 10.01, False),
    ("between", "50", "200", 50, True),
    ("between", "50", "200", 200, True),
    ("between", "50", "200", 120, True),
    ("between", "50", "200", 49, False),
    ("between", "50", "200", 201, False),
    ("between", "50", "", 120, False),
    ("gt", "100", "", None, False),
    ("lt", "100", "", None, False),
    ("equals", "0", "", None, False),
    ("gt", "100", "", "lots", False),
    ("gt", "100", "", True, False),
    ("is_empty", "", "", None, True),
    ("is_empty", "", "", "", True),
    ("is_empty", "", "", 0, False),
    ("not_empty", "", "", 0, True),
    ("not_empty", "", "", None, False),
]


@pytest.mark.parametrize(("operator", "value", "value_to", "actual", "expected"), NUMBER_CASES)
def test_number_operator_compares_numerically(operator, value, value_to, actual, expected):
    # Given a numeric condition and a lead's value (a number, a numeric string or nothing)
    # When the condition is tested
    matched = condition_matches(NUMBER, operator, value, value_to, actual)

    # Then it compares as numbers; a missing number only satisfies "is not" and "is empty"
    assert matched is expected


LIST_CASES = [
    ("contains", "crm", ["CRM", "analytics"], True),
    ("contains", "crm, billing", ["billing"], True),
    ("contains", "crm", ["analytics"], False),
    ("in", "Crm, Billing", ["billing"], True),
    ("in", "crm,billing", ["support"], False),
    ("not_contains", "crm", ["analytics"], True),
    ("not_contains", "crm, analytics", ["ANALYTICS"], False),
    ("is_empty", "", [], True),
    ("is_empty", "", None, True),
    ("is_empty", "", ["crm"], False),
    ("not_empty", "", ["crm"], True),
    ("not_empty", "", [], False),
]


@pytest.mark.parametrize(("operator", "value", "actual", "expected"), LIST_CASES)
def test_list_operator_compares_items_ignoring_case(operator, value, actual, expected):
    # Given a condition on a list field (comma-separated values) and the lead's items
    # When the condition is tested
    matched = condition_matches(LIST, operator, value, "", actual)

    # Then it is about shared items, whatever their case
    assert matched is expected


@pytest.mark.parametrize(
    ("operator", "actual", "expected"),
    [
        ("is_true", True, True),
        ("is_true", False, False),
        ("is_true", None, False),
        ("is_true", "yes", False),
        ("is_false", False, True),
        ("is_false", None, True),
        ("is_false", True, False),
    ],
)
def test_bool_operator_treats_only_true_as_true(operator, actual, expected):
    # Given a yes/no condition
    # When it is tested on a value
    matched = condition_matches(BOOL, operator, "", "", actual)

    # Then only a real True is true; missing counts as false
    assert matched is expected


def test_every_operator_of_every_kind_has_a_test_case():
    # Given the operators each field kind offers
    covered = {
        TEXT: {c[0] for c in TEXT_CASES} | {"in_domain_list"},
        NUMBER: {c[0] for c in NUMBER_CASES},
        LIST: {c[0] for c in LIST_CASES},
        BOOL: {"is_true", "is_false"},
    }
    # Then the tables above exercise every one of them
    assert covered == {kind: set(ops) for kind, ops in OPERATORS_BY_KIND.items()}


# --- validate_condition -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "operator", "value", "value_to", "message"),
    [
        (TEXT, "gt", "5", "", "does not fit a text field"),
        (TEXT, "between", "1", "5", "does not fit a text field"),
        (TEXT, "is_true", "", "", "does not fit a text field"),
        (NUMBER, "contains", "5", "", "does not fit a number field"),
        (NUMBER, "regex", "5", "", "does not fit a number field"),
        (LIST, "equals", "crm", "", "does not fit a list field"),
        (BOOL, "equals", "yes", "", "does not fit a bool field"),
        (TEXT, "sounds_like", "x", "", "Unknown operator"),
        (TEXT, "regex", "(unclosed", "", "not a valid regular expression"),
        (TEXT, "regex", "[a-", "", "not a valid regular expression"),
        (NUMBER, "gt", "lots", "", "“lots” is not a number"),
        (NUMBER, "equals", "1e999", "", "is not a number"),
        (NUMBER, "between", "10", "many", "upper end"),
        (NUMBER, "between", "10", "", "upper end"),
        (TEXT, "equals", "   ", "", "Give a value"),
        (TEXT, "in_domain_list", "partners", "", "no domain list “partners”"),
    ],
)
def test_validate_condition_refuses_unusable_conditions(kind, operator, value, value_to, message):
    # Given a condition that cannot be evaluated
    # When it is validated
    with pytest.raises(RuleError) as refused:
        validate_condition(kind, operator, value, value_to, domain_lists=["free_mail"])

    # Then the refusal says why, in words a marketer reads
    assert message in str(refused.value)


@pytest.mark.parametrize(
    ("kind", "operator", "value", "value_to"),
    [
        (TEXT, "regex", r"^vp\b", ""),
        (TEXT, "in_domain_list", "free_mail", ""),
        (TEXT, "is_empty", "", ""),
        (NUMBER, "between", "10", "200.5"),
        (NUMBER, "gte", " 42 ", ""),
        (LIST, "in", "crm,billing", ""),
        (BOOL, "is_false", "", ""),
    ],
)
def test_validate_condition_accepts_usable_conditions(kind, operator, value, value_to):
    # Given a condition that fits its field, when it is validated, then nothing is raised
    validate_condition(kind, operator, value, value_to, domain_lists=["free_mail"])


def test_field_kind_refuses_unknown_fields_and_reads_custom_kinds():
    # Given a built-in field, a custom field and two unknown names
    # Then the kinds come from the field table and the custom definitions
    assert field_kind("company.employee_count") == NUMBER
    assert field_kind("custom.seats", {"seats": NUMBER}) == NUMBER
    with pytest.raises(RuleError, match="no lead field"):
        field_kind("shoe_size")
    with pytest.raises(RuleError, match="no custom field"):
        field_kind("custom.seats", {})


# --- activity_matches ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("rule", "activity", "expected"),
    [
        (eng(), act(1, NOW), True),
        (eng(), act(1, NOW, type_="email_open"), False),
        (eng(target="url", pattern="/PRICING"), act(1, NOW), True),
        (eng(target="url", pattern="/careers"), act(1, NOW), False),
        (eng(target="url", pattern="/pricing"), act(1, NOW, url=""), False),
        (
            eng(target="url", match="equals", pattern="HTTPS://hotlist.example/pricing"),
            act(1, NOW),
            True,
        ),
        (
            eng(target="url", match="equals", pattern="https://hotlist.example/"),
            act(1, NOW),
            False,
        ),
        (eng(target="url", match="regex", pattern=r"/(pricing|plans)$"), act(1, NOW), True),
        (
            eng(target="url", match="regex", pattern=r"/(pricing|plans)$"),
            act(1, NOW, url="https://hotlist.example/pricing/faq"),
            False,
        ),
        (
            eng(activity_type="form_submission", target="property:form", pattern="demo"),
            act(1, NOW, type_="form_submission", form="Request a DEMO"),
            True,
        ),
        (
            eng(activity_type="form_submission", target="property:form", pattern="demo"),
            act(1, NOW, type_="form_submission", form="Newsletter"),
            False,
        ),
        (
            eng(activity_type="form_submission", target="property:form", pattern="demo"),
            act(1, NOW, type_="form_submission"),
            False,
        ),
        (
            eng(target="property:seats", match="equals", pattern="25"),
            act(1, NOW, seats=25),
            True,
        ),
        (eng(min_duration_seconds=60), act(1, NOW, duration=60), True),
        (eng(min_duration_seconds=60), act(1, NOW, duration=59), False),
        (eng(min_duration_seconds=60), act(1, NOW, duration=None), False),
    ],
)
def test_activity_matches_type_target_and_min_duration(rule, activity, expected):
    # Given an engagement rule and one activity
    # When the rule is tested on it
    matched = activity_matches(rule, activity)

    # Then type, target text (any case) and minimum duration all have to fit
    assert matched is expected


# --- engagement_awards: caps, bonus, window, order --------------------------------------


def test_max_per_day_counts_only_the_first_matches_of_each_day():
    # Given five page views on one day and two on the next, at most two a day
    activities = burst(1, DAY1, 5) + burst(10, DAY2, 2)

    # When the awards are computed
    awards = engagement_awards([eng(max_per_day=2)], activities, NOW)

    # Then the first two of each day earn the points
    assert regular(awards) == [1, 2, 10, 11]
    assert {a.points for a in awards} == {10.0}


def test_max_per_lead_caps_matches_over_all_days():
    # Given page views on three days, at most three per lead
    activities = burst(1, DAY1, 2) + burst(10, DAY2, 2) + burst(20, DAY3, 2)

    # When the awards are computed
    awards = engagement_awards([eng(max_per_lead=3)], activities, NOW)

    # Then only the three earliest count
    assert regular(awards) == [1, 2, 10]


def test_day_and_lead_caps_apply_together():
    # Given three page views a day on three days, at most two a day and four per lead
    activities = burst(1, DAY1, 3) + burst(10, DAY2, 3) + burst(20, DAY3, 3)

    # When the awards are computed
    awards = engagement_awards([eng(max_per_day=2, max_per_lead=4)], activities, NOW)

    # Then two count on each of the first two days and none on the third
    assert regular(awards) == [1, 2, 10, 11]


def test_bonus_on_the_nth_match_of_a_day_once_a_day_and_beyond_the_caps():
    # Given a rule capped at one a day and one per lead, with +25 on the third match of a day
    rule = eng(max_per_day=1, max_per_lead=1, bonus_count=3, bonus_points=25)
    activities = burst(1, DAY1, 7) + burst(10, DAY2, 2) + burst(20, DAY3, 3)

    # When the awards are computed
    awards = engagement_awards([rule], activities, NOW)

    # Then the capped points count once in all, while the bonus comes once on each day
    # with at least three matches, on the activity that reached the count
    assert regular(awards) == [1]
    assert bonuses(awards) == [3, 22]
    assert all(a.points == 25.0 for a in awards if a.bonus)
    assert sum(a.points for a in awards) == 10 + 25 + 25


def test_bonus_counts_matches_the_day_cap_dropped():
    # Given at most one page view a day and +5 on the second one
    rule = eng(max_per_day=1, bonus_count=2, bonus_points=5)

    # When two page views happen on one day
    awards = engagement_awards([rule], burst(1, DAY1, 2), NOW)

    # Then the second earns the bonus though it earns no regular points
    assert regular(awards) == [1]
    assert bonuses(awards) == [2]


def test_per_day_cap_counts_utc_days_whatever_the_offset_of_the_timestamps():
    # Given two page views on the same UTC day, one written with a +02:00 offset that puts
    # it on the next local day, at most one a day
    berlin = timezone(timedelta(hours=2))
    activities = [
        act(1, datetime(2025, 3, 10, 21, 0, tzinfo=UTC)),
        act(2, datetime(2025, 3, 11, 1, 30, tzinfo=berlin)),  # 23:30 UTC on the 10th
    ]

    # When the awards are computed
    awards = engagement_awards([eng(max_per_day=1)], activities, NOW)

    # Then both fall on one UTC day, so only the first counts
    assert regular(awards) == [1]


def test_recency_window_ignores_older_activities():
    # Given page views 8 days, exactly 7 days and 6 days ago, and a 7-day window
    activities = [
        act(1, NOW - timedelta(days=8)),
        act(2, NOW - timedelta(days=7)),
        act(3, NOW - timedelta(days=6)),
    ]

    # When the awards are computed
    awards = engagement_awards([eng(recency_days=7)], activities, NOW)

    # Then what is older than the window earns nothing; the edge still counts
    assert regular(awards) == [2, 3]


def test_future_activities_are_ignored():
    # Given a page view now and one tomorrow
    activities = [act(1, NOW), act(2, NOW + timedelta(days=1))]

    # When the awards are computed at NOW
    awards = engagement_awards([eng()], activities, NOW)

    # Then only the one that has happened counts, at the time it happened
    assert regular(awards) == [1]
    assert awards[0].at == NOW


def test_ties_in_time_are_broken_by_id():
    # Given two page views at the same instant, one per lead allowed, in reverse id order
    activities = [act(9, DAY1), act(4, DAY1)]

    # When the awards are computed
    awards = engagement_awards([eng(max_per_lead=1)], activities, NOW)

    # Then the lower id counts
    assert regular(awards) == [4]


def test_non_engagement_rules_and_other_types_earn_nothing():
    # Given a fit rule and an email rule, and only page views
    rules = [
        RuleSpec(id=1, kind=FIT, points=10, description="fit"),
        eng(id=2, activity_type="email_open"),
    ]

    # When the awards are computed, then there are none
    assert engagement_awards(rules, burst(1, DAY1, 3), NOW) == []


SHUFFLE_RULES = [
    eng(id=1, max_per_day=2, bonus_count=3, bonus_points=7),
    eng(id=2, points=-4, max_per_lead=3, recency_days=2),
    eng(id=3, points=6, target="url", pattern="pricing", max_per_day=1, max_per_lead=2),
    eng(id=4, activity_type="email_open", points=3, bonus_count=2, bonus_points=-2),
]
SHUFFLE_ACTIVITIES = [
    act(
        pk,
        DAY1 + timedelta(hours=(pk * 7) % 60),
        type_="email_open" if pk % 3 == 0 else "page_view",
        url="https://hotlist.example/pricing" if pk % 2 else "https://hotlist.example/blog",
    )
    for pk in range(1, 25)
] + [act(99, NOW + timedelta(hours=1))]


@given(st.permutations(SHUFFLE_ACTIVITIES))
@settings(max_examples=50, deadline=None)
def test_awards_do_not_depend_on_arrival_order(shuffled):
    # Given the same activities in some arrival order
    # When the awards are computed
    awards = engagement_awards(SHUFFLE_RULES, shuffled, NOW)

    # Then they are exactly those of the activities in time order
    expected = engagement_awards(SHUFFLE_RULES, SHUFFLE_ACTIVITIES, NOW)
    assert sorted(awards, key=lambda a: a.key) == sorted(expected, key=lambda a: a.key)
    assert bonuses(awards), "the example should exercise the bonus"


def test_fit_awards_give_each_matching_rule_once():
    # Given two fit rules, one matching the lead
    rules = [
        RuleSpec(
            id=1,
            kind=FIT,
            points=20,
            description="",
            field="job_title",
            operator="contains",
            value="head",
        ),
        RuleSpec(
            id=2,
            kind=FIT,
            points=-30,
            description="",
            field="email",
            operator="in_domain_list",
            value="free_mail",
        ),
    ]

    # When a head of sales with a company address is tested
    awards = fit_awards(rules, {"job_title": "Head of Sales", "email": "a@acme.com"}, LISTS, NOW)

    # Then only the job-title rule earns, at the time of scoring
    assert [(a.rule_id, a.points, a.at) for a in awards] == [(1, 20.0, NOW)]


# --- Decay, idle penalty, score and bands -------------------------------------------------


def test_half_life_exactly_halves():
    # Given a seven-day half-life
    week = 7 * SECONDS_PER_DAY

    # Then one half-life leaves a half, two leave a quarter, and 100 points become 50
    assert decay_factor(week, 7) == 0.5
    assert decay_factor(2 * week, 7) == 0.25
    assert decayed(100.0, NOW - timedelta(days=7), NOW, 7) == 50.0
    assert decayed(100.0, NOW - timedelta(days=3.5), NOW, 7) == pytest.approx(100 / 2**0.5)


@pytest.mark.parametrize("half_life", [None, 0])
def test_no_half_life_means_no_decay(half_life):
    # Given no half-life, when a year passes, then nothing decays
    assert decay_factor(365 * SECONDS_PER_DAY, half_life) == 1.0
    assert decayed(42.0, NOW - timedelta(days=365), NOW, half_life) == 42.0


def test_no_time_passed_or_no_start_means_no_decay():
    # Given no elapsed time, time running backwards, or no start, then the value is kept
    assert decay_factor(0, 7) == 1.0
    assert decay_factor(-3600, 7) == 1.0
    assert decayed(42.0, None, NOW, 7) == 42.0


def test_engagement_at_ignores_entries_written_for_later():
    # Given entries two half-lives ago, one half-life ago and tomorrow
    entries = [
        (40.0, NOW - timedelta(days=14)),
        (20.0, NOW - timedelta(days=7)),
        (1000.0, NOW + timedelta(days=1)),
    ]

    # When the engagement is read at NOW with a 7-day half-life
    value = engagement_at(entries, NOW, 7)

    # Then each decays from its own time and the future one is not there yet
    assert value == pytest.approx(40 / 4 + 20 / 2)


ENTRY = st.tuples(
    st.integers(min_value=-50, max_value=50).map(float),
    st.floats(min_value=0, max_value=60 * SECONDS_PER_DAY, allow_nan=False),
)


@given(
    entries=st.lists(ENTRY, min_size=1, max_size=20),
    half_life=st.one_of(st.none(), st.floats(min_value=0.5, max_value=60)),
    tail=st.floats(min_value=0, max_value=30 * SECONDS_PER_DAY),
)
@settings(max_examples=100, deadline=None)
def test_lazy_decay_equals_summing_decayed_entries(entries, half_life, tail):
    # Given ledger entries (points, seconds after a start) and a half-life (or none)
    start = datetime(2025, 1, 1, tzinfo=UTC)
    timed = sorted(((p, start + timedelta(seconds=s)) for p, s in entries), key=lambda e: e[1])

    # When the engagement is carried forward event by event with
    # e(now) = e(t) * 0.5 ** ((now - t) / half_life) + new_points
    value, since = 0.0, None
    for points, at in timed:
        value = decayed(value, since, at, half_life) + points
        since = at
    now = since + timedelta(seconds=tail)
    lazy = decayed(value, since, now, half_life)

    # Then it equals summing every entry decayed from its own time
    assert lazy == pytest.approx(engagement_at(timed, now, half_life), abs=1e-6)


LEDGER_ENTRY = st.tuples(
    st.floats(min_value=0, max_value=60 * SECONDS_PER_DAY, allow_nan=False),
    st.booleans(),
    st.integers(min_value=-50, max_value=50).map(float),
    # Seconds after its own time that the entry starts to count (0: at once).
    st.one_of(st.just(0.0), st.floats(min_value=0, max_value=10 * SECONDS_PER_DAY)),
)


@given(
    entries=st.lists(LEDGER_ENTRY, min_size=1, max_size=40),
    half_life=st.one_of(st.none(), st.floats(min_value=0.5, max_value=60)),
    points=st.integers(min_value=1, max_value=40),
    tail=st.floats(min_value=-SECONDS_PER_DAY, max_value=30 * SECONDS_PER_DAY),
)
@settings(max_examples=150, deadline=None)
def test_score_series_in_one_pass_equals_summing_at_each_point(entries, half_life, points, tail):
    # Given ledger entries (seconds after a start, engagement or not, points, delay before
    # they count) in any order
    start = datetime(2025, 1, 1, tzinfo=UTC)
    timed = [
        (start + timedelta(seconds=s), is_eng, p, start + timedelta(seconds=s + delay))
        for s, is_eng, p, delay in entries
    ]
    now = max(counts for *_, counts in timed) + timedelta(seconds=tail)
    thresholds = Thresholds(hot=80, warm=30, grade_a=60, grade_b=40, grade_c=20)

    # When the series is drawn in one pass
    series = score_series(
        timed, now=now, points=points, half_life_days=half_life, thresholds=thresholds
    )

    # Then it has the points asked for, from the first entry to count to now, and each is
    # the sum of the fit counting so far and of every engagement entry counting so far,
    # decayed from its own time (up to the last bits of a float, which decide the rounding
    # only at exactly .5)
    assert len(series) == points
    assert series[-1][0] == now
    first = min(counts for *_, counts in timed)
    assert series[0][0] == (now if points == 1 else min(first, now))
    for when, score in series:
        counting = [(at, is_eng, p) for at, is_eng, p, counts in timed if counts <= when]
        fit = sum(p for _, is_eng, p in counting if not is_eng)
        engagement = engagement_at(
            ((p, at) for at, is_eng, p in counting if is_eng), when, half_life
        )
        assert score in {
            total_score(fit, engagement - 1e-9, thresholds),
            total_score(fit, engagement + 1e-9, thresholds),
        }


def test_history_entries_backdate_the_first_scoring_only():
    # Given a lead first scored at T0 on a week of history, then a late activity and a
    # rule change's reversal and new award, both written two days later
    t0 = datetime(2025, 3, 10, tzinfo=UTC)
    later = t0 + timedelta(days=2)
    entries = [
        (t0 - timedelta(days=7), True, 10.0, t0),
        (t0, False, 20.0, t0),
        (t0 - timedelta(days=1), True, 5.0, later),
        (later, True, -10.0, later),
        (t0 - timedelta(days=7), True, 15.0, later),
    ]

    # When they are prepared for the score history
    counted = history_entries(entries)

    # Then the first scoring's entries count from their own time and the later ones from
    # when they were written
    assert [counts for *_, counts in counted] == [
        t0 - timedelta(days=7),
        t0,
        later,
        later,
        later,
    ]
    assert history_entries([]) == []

    # And a lead first scored before any of its entries was written (no points then)
    # has every entry counting from when it was written or from its own time
    counted = history_entries(entries, t0 - timedelta(days=1))
    assert [counts for *_, counts in counted] == [t0, t0, later, later, later]


@pytest.mark.parametrize(
    ("idle", "per_week", "expected"),
    [
        (timedelta(days=6, hours=23), 5, 0.0),
        (timedelta(days=7), 5, 5.0),
        (timedelta(days=20), 5, 10.0),
        (timedelta(days=21), 5, 15.0),
        (timedelta(days=30), 0, 0.0),
        (-timedelta(days=14), 5, 0.0),
    ],
)
def test_idle_penalty_takes_points_per_whole_idle_week(idle, per_week, expected):
    # Given the last engagement some time ago, when the penalty is computed at NOW
    penalty = idle_penalty(NOW - idle, NOW, per_week)

    # Then every whole week counts, and a future engagement costs nothing
    assert penalty == expected


def test_idle_penalty_needs_an_engagement_to_start_counting():
    # Given a lead that never engaged, then nothing is taken off
    assert idle_penalty(None, NOW, 5) == 0.0


@pytest.mark.parametrize(
    ("fit", "engagement", "max_points", "expected"),
    [
        (30.0, 20.4, None, 50),
        (30.0, 20.6, None, 51),
        (30.0, 80.0, None, 110),
        (30.0, 80.0, 100, 100),
        (30.0, 69.6, 100, 100),
        (30.0, 40.0, 100, 70),
        (-40.0, 10.0, 100, -30),
    ],
)
def test_total_score_rounds_the_sum_and_stops_at_max_points(fit, engagement, max_points, expected):
    # Given fit and engagement and the model's ceiling (or none)
    thresholds = Thresholds(max_points=max_points)

    # When they are combined, then the score is the rounded sum under the ceiling
    assert total_score(fit, engagement, thresholds) == expected


THRESHOLDS = Thresholds(hot=80, warm=30, grade_a=60, grade_b=40, grade_c=20, engaged=30)


@pytest.mark.parametrize(
    ("score", "band"),
    [(200, "hot"), (80, "hot"), (79.99, "warm"), (30, "warm"), (29, "cold"), (-5, "cold")],
)
def test_band_starts_at_its_threshold(score, band):
    assert band_for(score, THRESHOLDS) == band


@pytest.mark.parametrize(
    ("fit", "grade"),
    [(60, "A"), (59.9, "B"), (40, "B"), (39, "C"), (20, "C"), (19.9, "D"), (-10, "D")],
)
def test_grade_starts_at_its_threshold(fit, grade):
    assert grade_for(fit, THRESHOLDS) == grade


@pytest.mark.parametrize(
    ("fit", "engagement", "quadrant"),
    [
        (40, 30, "hot"),
        (40, 29.9, "target"),
        (39.9, 30, "researcher"),
        (39.9, 29.9, "cold"),
        (100, 100, "hot"),
    ],
)
def test_quadrant_splits_on_grade_b_fit_and_engaged_threshold(fit, engagement, quadrant):
    assert quadrant_for(fit, engagement, THRESHOLDS) == quadrant


@pytest.mark.parametrize(
    ("field", "operator", "value", "sentence"),
    [
        ("seniority", "in", "c_level,vp", "+10 when seniority is one of C-level, VP"),
        ("budget", "equals", "50k_250k", "+10 when budget is 50k to 250k"),
        ("company.industry", "not_equals", "software", "+10 when industry is not Software"),
        ("job_title", "equals", "cto", "+10 when job title is cto"),
        ("seniority", "equals", "nonsense", "+10 when seniority is nonsense"),
    ],
)
def test_a_rule_reads_pick_list_values_by_their_labels(field, operator, value, sentence):
    from scoring.models import Rule

    rule = Rule(kind="fit", points=10, field=field, operator=operator, value=value)

    assert rule.describe() == sentence

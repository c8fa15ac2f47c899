"""Regular expressions mean the same in real-time scoring (Python) and in a rescore (SQL)."""

import pytest
from django.db import connection

from scoring.regex_dialects import compile_regex, postgres_regex, regex_dialects
from scoring.rule_fields import RuleError

PATTERNS = [
    r"\bvp\b",
    r"\Bing\b",
    r"^head of",
    r"pricing$",
    r"[$]",
    r"a.b",
    r"(?:blog|news)/\d+",
    r"^[^@]+@(gmail|yahoo)\.",
    r"[\]$]z$",
    r"(?=.*sales)vp",
    r"(?<=/)careers",
    r"colou?r{1,2}",
    r"\w+\s\w+",
]
SUBJECTS = [
    "VP Sales",
    "svp of sales",
    "Head of IT",
    "engineering vp",
    "/pricing",
    "/pricing\n",
    "/pricing/enterprise",
    "price in $",
    "a\nb",
    "blog/2024",
    "jane@gmail.com",
    "jane@company.example",
    "]z",
    "$z",
    "https://x.example/careers",
    "colourr",
    "",
]


@pytest.mark.parametrize(
    ("pattern", "python", "postgres"),
    [
        (r"\bvp\b", r"\bvp\b", r"\yvp\y"),
        (r"\Bing", r"\Bing", r"\Ying"),
        (r"[\b]", r"[\b]", r"[\b]"),
        (r"\\b", r"\\b", r"\\b"),
        (r"pricing$", r"pricing\Z", r"pricing$"),
        (r"[$]x", r"[$]x", r"[$]x"),
        (r"a\$", r"a\$", r"a\$"),
        (r"[]$]", r"[]$]", r"[]$]"),
    ],
)
def test_each_dialect_gets_its_own_spelling(pattern, python, postgres):
    assert regex_dialects(pattern) == (python, postgres)


@pytest.mark.parametrize(
    ("pattern", "says"),
    [
        (r"(?P<word>vp)", "named groups"),
        (r"(?>vp)", "atomic groups"),
        (r"(?i)vp", "inline flags"),
        (r"(?s:a.b)", "inline flags"),
        (r"vp*+", "possessive"),
        (r"a{,3}", "lower bound"),
        (r"[[:alpha:]]+", "POSIX classes"),
        (r"(unclosed", "not a valid regular expression"),
    ],
)
def test_constructs_the_dialects_disagree_on_are_refused_with_a_reason(pattern, says):
    with pytest.raises(RuleError, match=says):
        regex_dialects(pattern)


def test_escaped_look_alikes_are_plain_text():
    python, postgres = regex_dialects(r"\(\?P")
    assert compile_regex(r"\(\?P").search("(?P") is not None
    assert (python, postgres) == (r"\(\?P", r"\(\?P")


@pytest.mark.postgres
@pytest.mark.django_db
def test_python_and_postgresql_agree_on_every_pattern_and_text():
    disagreements = []
    with connection.cursor() as cursor:
        for pattern in PATTERNS:
            for subject in SUBJECTS:
                cursor.execute("SELECT %s ~* %s", [subject, postgres_regex(pattern)])
                in_sql = cursor.fetchone()[0]
                in_python = compile_regex(pattern).search(subject) is not None
                if in_sql != in_python:
                    disagreements.append((pattern, subject, in_python, in_sql))
    assert disagreements == []


@pytest.mark.postgres
@pytest.mark.django_db
def test_a_pattern_only_python_accepts_is_refused_before_it_reaches_a_rescore():
    from django.core.exceptions import ValidationError

    from scoring.models import Rule, RuleKind
    from tests.factories import active_model

    # PostgreSQL allows at most 255 repetitions; Python has no such limit
    rule = Rule(
        model=active_model(),
        name="long ids",
        kind=RuleKind.ENGAGEMENT,
        points=5,
        activity_type="page_view",
        target="url",
        match="regex",
        pattern=r"/p/\d{1,300}",
    )
    with pytest.raises(ValidationError, match="database cannot use"):
        rule.full_clean()
    rule.pattern = r"/p/\d{1,30}"
    rule.full_clean()

import factory
from django.utils import timezone

from leads.models import Activity, ActivityType, Company, Lead


class CompanyFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Company

    name = factory.Sequence(lambda n: f"Company {n}")
    domain = factory.Sequence(lambda n: f"company{n}.example")
    industry = "software"
    employee_count = 120
    country = "DE"


class LeadFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Lead

    first_name = factory.Faker("first_name")
    last_name = factory.Faker("last_name")
    email = factory.Sequence(lambda n: f"lead{n}@company.example")
    job_title = "Head of Operations"
    company = factory.SubFactory(CompanyFactory)
    country = "DE"


class ActivityFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Activity

    lead = factory.SubFactory(LeadFactory)
    type = ActivityType.PAGE_VIEW
    url = "https://hotlist.example/pricing"
    occurred_at = factory.LazyFunction(timezone.now)


def active_model(**fields):
    """An active default scoring model (no rules yet)."""
    from scoring.models import ScoringModel

    defaults = {"name": "Default", "status": "active", "is_default": True}
    return ScoringModel.objects.create(**{**defaults, **fields})


def fit_rule(model, points: int, field: str, operator: str, value: str = "", *, name: str = ""):
    from scoring.models import Rule

    return Rule.objects.create(
        model=model,
        name=name or f"{field} {operator} {value}",
        kind="fit",
        points=points,
        field=field,
        operator=operator,
        value=value,
    )


def page_rule(model, points: int, pattern: str, **caps):
    from scoring.models import Rule

    return Rule.objects.create(
        model=model,
        name=f"page {pattern}",
        kind="engagement",
        points=points,
        activity_type="page_view",
        target="url",
        pattern=pattern,
        **caps,
    )

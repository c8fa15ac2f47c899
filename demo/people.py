"""Companies and the people in them: names, places, sizes, job titles, BANT, e-mail
addresses, marketing attribution, product interests and custom fields, drawn tilted
by the latent fit."""

from __future__ import annotations

import math
import random
import unicodedata
from collections.abc import Callable, Sequence
from decimal import Decimal
from typing import TypeVar

from demo.catalogue import (
    _NO_LEGAL_FORM,
    CAMPAIGNS,
    COMPANY_STEMS,
    CRM_IN_USE,
    FLEET_INDUSTRIES,
    INDUSTRIES,
    PRODUCT_LINES,
    SIZE_BUCKETS,
    SOURCES,
    TITLES,
)
from demo.context import _Ctx
from demo.places import (
    COMPETITOR_DOMAINS,
    COUNTRIES,
    COUNTRY_WEIGHTS,
    DISPOSABLE_DOMAINS,
    FREE_MAIL_DOMAINS,
    SPAM_LOCAL_PARTS,
    Country,
)
from demo.propensity import (
    AUTHORITY_FIT,
    BUDGET_FIT,
    DEPARTMENT_FIT,
    INDUSTRY_FIT,
    NEED_FIT,
    SENIORITY_FIT,
    TILT,
    TIMELINE_FIT,
)
from demo.rows import CompanyRow, LeadRow
from leads.models import (
    Department,
    Seniority,
    Source,
    normalize_email,
)

T = TypeVar("T")


def _tilted(rng: random.Random, options: Sequence[tuple[T, float, float]], latent: float) -> T:
    """Pick an option by ``weight * exp(TILT * latent * score)``: a high latent favours
    options that score well."""
    weights = [weight * math.exp(TILT * latent * score) for _, weight, score in options]
    return rng.choices([value for value, _, _ in options], weights)[0]


def _company(ctx: _Ctx) -> tuple[CompanyRow, float]:
    rng = ctx.rng
    latent = rng.gauss(0, 1)
    industry = _tilted(rng, [(k, p.weight, INDUSTRY_FIT[k]) for k, p in INDUSTRIES.items()], latent)
    bucket = _tilted(rng, [(b, b[2], b[3]) for b in SIZE_BUCKETS], latent)
    employees: int | None = _employees(rng, bucket)
    country = rng.choices(COUNTRIES, COUNTRY_WEIGHTS)[0]
    region, cities = rng.choice(country.regions)
    name, domain = _company_name(ctx, industry, country)
    revenue = _revenue(rng, industry, employees or 0)
    if rng.random() < 0.07:
        employees = None
    company = CompanyRow(
        name=name,
        domain=domain,
        industry=industry,
        employee_count=employees,
        annual_revenue=revenue,
        country=country.code,
        region=region,
        city=rng.choice(cities),
        created_at=ctx.now,
    )
    return company, latent


def _employees(rng: random.Random, bucket: tuple[int, int, float, float]) -> int:
    smallest, largest, _, _ = bucket
    if largest >= 100_000:  # the open-ended top: a Pareto tail
        return min(int(smallest * rng.paretovariate(1.1)), largest)
    return int(math.exp(rng.uniform(math.log(smallest), math.log(largest + 1))))


def _revenue(rng: random.Random, industry: str, employees: int) -> Decimal | None:
    per_employee = INDUSTRIES[industry].revenue_per_employee
    if per_employee is None or not employees or rng.random() < 0.15:
        return None
    revenue = employees * per_employee * rng.lognormvariate(0, 0.4)
    return Decimal(max(1, round(revenue / 1000)) * 1000)


def _company_name(ctx: _Ctx, industry: str, country: Country) -> tuple[str, str]:
    """A name and a domain unique across the world: the n-th company of an industry
    takes the n-th name of the industry's shuffled list, numbered once the list is spent."""
    words = INDUSTRIES[industry].words
    order = ctx.name_orders[industry]
    n = ctx.companies_by_industry[industry]
    ctx.companies_by_industry[industry] += 1
    stem_index, word_index = divmod(order[n % len(order)], len(words))
    stem, word = COMPANY_STEMS[stem_index], words[word_index]
    generation = n // len(order)
    suffix = str(generation + 1) if generation else ""
    domain = f"{stem.lower()}-{word.lower()}{suffix}.{country.tld}"
    legal = "" if industry in _NO_LEGAL_FORM else " " + ctx.rng.choice(country.legal_forms)
    return f"{stem} {word}{legal}", domain


EMAIL_PATTERNS: tuple[Callable[[str, str], str], ...] = (
    lambda first, last: f"{first}.{last}",
    lambda first, last: f"{first[0]}.{last}",
    lambda first, last: f"{first[0]}{last}",
    lambda first, last: f"{first}",
    lambda first, last: f"{first}_{last}",
)
EMAIL_PATTERN_WEIGHTS = (50, 15, 15, 12, 8)


def ascii_slug(text: str) -> str:
    """``Jürgen`` → ``jurgen``, ``de Jong`` → ``dejong``, ``O'Brien`` → ``obrien``."""
    text = text.translate(_TRANSLITERATE)
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(c for c in decomposed.lower() if c.isascii() and c.isalnum())


_TRANSLITERATE = str.maketrans({"ß": "ss", "ø": "o", "Ø": "O", "æ": "ae", "ł": "l", "Ł": "L"})


def _country_of(company: CompanyRow) -> Country:
    return next(c for c in COUNTRIES if c.code == company.country)


def _place(ctx: _Ctx, lead: LeadRow, country: Country) -> None:
    rng = ctx.rng
    company = lead.company
    if company and rng.random() < 0.9:
        lead.country, lead.region, lead.city = company.country, company.region, company.city
    elif lead.kind == "spam" and rng.random() < 0.6:
        return
    else:
        region, cities = rng.choice(country.regions)
        lead.country, lead.region, lead.city = country.code, region, rng.choice(cities)
    if lead.kind != "spam" and rng.random() < 0.65:
        lead.phone = (
            f"{country.phone_prefix} {rng.randint(20, 999)} {rng.randint(100_000, 9_999_999)}"
        )


def _person(ctx: _Ctx, lead: LeadRow, fit: float, company: CompanyRow | None) -> None:
    """Seniority, department, title and BANT, drawn tilted by the lead's latent fit."""
    rng = ctx.rng
    if lead.kind == "spam":
        lead.first_name, lead.last_name = rng.choice((("Test", "Test"), ("asdf", "asdf"), ("", "")))
        return
    small = company is not None and (company.employee_count or 0) < 20
    seniorities = [
        (s, w * (4 if small and s == Seniority.C_LEVEL else 1), SENIORITY_FIT[s])
        for s, w in (
            (Seniority.C_LEVEL, 6),
            (Seniority.VP, 6),
            (Seniority.DIRECTOR, 12),
            (Seniority.MANAGER, 25),
            (Seniority.INDIVIDUAL, 40),
            (Seniority.STUDENT, 3),
            (Seniority.UNKNOWN, 8),
        )
    ]
    lead.seniority = _tilted(rng, seniorities, fit)
    by_department = TITLES[lead.seniority]
    departments: list[tuple[str, float, float]] = [
        (d, 8 if d == Department.EXECUTIVE else 3, DEPARTMENT_FIT[d]) for d in by_department
    ]
    if lead.seniority not in (Seniority.C_LEVEL, Seniority.STUDENT, Seniority.UNKNOWN):
        departments = [(d, _DEPARTMENT_WEIGHTS[d], DEPARTMENT_FIT[d]) for d in by_department]
    lead.department = _tilted(rng, departments, fit)
    lead.job_title = rng.choice(by_department[lead.department])
    lead.budget = _bant(rng, BUDGET_FIT, fit, 0.5)
    lead.authority = _bant(rng, AUTHORITY_FIT, fit, 0.55)
    lead.need = _bant(rng, NEED_FIT, fit, 0.5)
    lead.timeline = _bant(rng, TIMELINE_FIT, fit, 0.45)


_DEPARTMENT_WEIGHTS: dict[str, float] = {
    Department.SALES: 22,
    Department.MARKETING: 22,
    Department.ENGINEERING: 14,
    Department.IT: 10,
    Department.FINANCE: 7,
    Department.OPERATIONS: 10,
    Department.HR: 5,
    Department.OTHER: 6,
}


def _bant(rng: random.Random, scores: dict[str, float], fit: float, known: float) -> str:
    """A BANT answer, known with probability ``known``; good answers for good fits."""
    if rng.random() >= known:
        return ""
    return _tilted(rng, [(value, 1.0, score) for value, score in scores.items() if value], fit)


def _email(
    ctx: _Ctx,
    lead: LeadRow,
    pattern: Callable[[str, str], str] | None,
    taken: set[str] | None,
) -> str:
    """A normalized address, unique in the world: at the company domain (unique within
    the company), or numbered with the lead's serial (unique everywhere)."""
    rng = ctx.rng
    first, last = ascii_slug(lead.first_name) or "x", ascii_slug(lead.last_name) or "x"
    number = lead.serial + 1
    if lead.kind == "spam":
        raw = f"{rng.choice(SPAM_LOCAL_PARTS)}{number}@{rng.choice(DISPOSABLE_DOMAINS)}"
    elif lead.kind == "competitor":
        raw = f"{first}.{last}{number}@{rng.choice(COMPETITOR_DOMAINS)}"
    elif lead.company is None or pattern is None or taken is None or rng.random() < 0.12:
        local = rng.choice((f"{first}.{last}", f"{first}{last}", f"{first[0]}{last}"))
        raw = f"{local}{number}@{rng.choice(FREE_MAIL_DOMAINS)}"
    else:
        local = pattern(first, last)
        while local in taken:
            local = f"{local}{rng.randint(2, 9)}"
        taken.add(local)
        raw = f"{local}@{lead.company.domain}"
    if rng.random() < 0.2:  # as typed into a form: capitals, stray blanks
        raw = f" {raw.title()} "
    return normalize_email(raw)


def _marketing(ctx: _Ctx, lead: LeadRow, intent: float) -> None:
    """Where the lead came from; referrals, partners and events bring keener leads."""
    rng = ctx.rng
    if lead.kind == "spam":
        lead.source = Source.WEBSITE
        return
    lead.source = _tilted(rng, SOURCES, intent)
    campaigns = CAMPAIGNS.get(lead.source, ())
    if not campaigns or rng.random() < 0.25:
        return
    name, utm_source, utm_medium, utm_campaign, terms = rng.choice(campaigns)
    lead.campaign, lead.utm_source = name, utm_source
    lead.utm_medium, lead.utm_campaign = utm_medium, utm_campaign
    lead.utm_term = rng.choice(terms) if terms else ""
    if utm_medium in ("cpc", "paid_social"):
        lead.utm_content = rng.choice(("text_ad_a", "text_ad_b", "carousel", "video_15s"))


def _interests(ctx: _Ctx, lead: LeadRow) -> None:
    rng = ctx.rng
    if lead.kind == "spam" or rng.random() < 0.3:
        return
    size = (lead.company.employee_count if lead.company else None) or 10
    analytical = lead.department in (Department.IT, Department.ENGINEERING, Department.FINANCE)
    weights = [5.0, 3.0 if analytical else 1.5, 0.6 + 1.2 * math.log10(size)]
    slugs = [slug for slug, _, _ in PRODUCT_LINES]
    first = rng.choices(slugs, weights)[0]
    chosen = [first]
    if rng.random() < 0.2:
        chosen.append(rng.choice([s for s in slugs if s != first]))
    lead.products = [ctx.cast.products[slug] for slug in chosen]


def _custom_fields(ctx: _Ctx, lead: LeadRow) -> None:
    rng = ctx.rng
    company = lead.company
    fleet_owner = company is not None and company.industry in FLEET_INDUSTRIES
    employees = company.employee_count if company and fleet_owner else None
    if employees and rng.random() < 0.6:
        lead.custom_fields["fleet_size"] = max(1, int(employees * rng.uniform(0.02, 0.4)))
    if lead.kind in ("company", "private") and rng.random() < 0.45:
        lead.custom_fields["crm_in_use"] = rng.choices(CRM_IN_USE, (3, 5, 3, 2, 1.5, 1))[0]

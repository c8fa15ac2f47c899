"""Finding companies that are one: by the domains that name them and by their names.

Each company is reduced to keys that compare: its name lower-cased, without accents,
punctuation or legal forms ("ACME, Inc." is "acme", as ``leads.duplicates.company_key``
has it), in ``CompanyMatchKey``, with the words of that name in ``CompanyNameWord``; and
the domains that name it, in ``CompanyDomainKey``: its website's (``www.`` and any
scheme or path left out) and its leads' email domains, never a free-mail provider's
(``leads.company_domains``). Two companies are likely one when they share a website
(sure: merged in bulk), when one's website is the other's leads' email domain or their
leads write from one domain, or when their names are alike: on PostgreSQL, names that
share a word and whose trigram similarity is at least the admin's company threshold
(``DuplicateSettings.company_name_similarity``); on SQLite, equal names.

Names are compared only with the names that share a word with them, by the words'
index: a trigram index answers ``%`` by walking the lists of every trigram of the name,
and the trigrams of the words companies are named with ("group", "services") are
common, so each lookup would read a share of all companies (measured: 14 ms a company
among 5,000, growing with their number). Through shared words a lookup reads only the
few companies named alike; a misspelling in every word of a name is what it misses.

The nightly scan (``company_duplicates_scan``, run by ``leads.tasks.scan_duplicates``
after the leads' scan) computes every company's keys again (companies are few beside
leads: one query over the companies and one grouped query over the leads' addresses)
and stores those that changed, which it then compares with everyone in one SQL
statement whose joins run on the keys' indexes, never a loop over pairs. A domain or a
name more than ``CROWDED_KEY`` companies share (a hosting provider's, "Consulting") says
nothing and is skipped, as is a word more than ``CROWDED_WORD`` companies share ("and",
"international"). Pairs go to the review queue; a pair answered "not a duplicate" keeps
its answer.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from django.db import connection, transaction
from django.db.models import Q, Value
from django.db.models.functions import StrIndex, Substr
from django.utils import timezone

from crm.models import User

from .company_domains import free_mail_domains, web_domain
from .duplicates import CHUNK, CROWDED_KEY, company_key
from .models import (
    Company,
    CompanyDomainKey,
    CompanyDuplicatePair,
    CompanyMatchKey,
    CompanyNameWord,
    DuplicateSettings,
    Lead,
    PairStatus,
)

# How sure a shared domain is: both websites, one website and the other's leads'
# addresses, or only the leads' addresses. A name match scores its similarity.
WEBSITES_SCORE = 1.0
WEBSITE_AND_MAIL_SCORE = 0.9
MAIL_SCORE = 0.8
# A word of more company names than this is no sign of one company: not compared by.
CROWDED_WORD = 200
# Words shorter than this ("a", "1") tell nothing.
MIN_WORD = 2


# --- Keys -----------------------------------------------------------------------------


@dataclass(frozen=True)
class CompanyKeys:
    name_key: str
    # (domain, whether it is the company's website)
    domains: frozenset[tuple[str, bool]]

    @property
    def words(self) -> list[str]:
        return sorted({word for word in self.name_key.split() if len(word) >= MIN_WORD})


def company_keys_compute(*, company_ids: Iterable[int] | None = None) -> dict[int, CompanyKeys]:
    """The keys of these companies (every company with None), by company id."""
    ids = None if company_ids is None else list(company_ids)
    companies = Company.objects.all() if ids is None else Company.objects.filter(pk__in=ids)
    free = free_mail_domains()
    names: dict[int, str] = {}
    domains: dict[int, dict[str, bool]] = {}
    for pk, name, domain in companies.values_list("pk", "name", "domain").iterator(CHUNK):
        names[pk] = company_key(name)[:200]
        website = web_domain(domain)
        domains[pk] = {website: True} if website and website not in free else {}
    for pk, domain in _mail_domains(ids):
        found = web_domain(domain)
        if pk in domains and found and found not in free:
            domains[pk].setdefault(found, False)
    return {
        pk: CompanyKeys(name_key=names[pk], domains=frozenset(domains[pk].items())) for pk in names
    }


def _mail_domains(company_ids: list[int] | None) -> Iterable[tuple[int, str]]:
    """(company id, domain) of the companies' leads' addresses, each once: the database
    cuts and groups them, by the leads' company index for a few companies."""
    leads = Lead.objects.filter(company__isnull=False)
    if company_ids is not None:
        leads = leads.filter(company_id__in=company_ids)
    cut = Substr("email", StrIndex("email", Value("@")) + 1)
    return (
        leads.annotate(domain=cut)
        .order_by()
        .values_list("company_id", "domain")
        .distinct()
        .iterator(CHUNK)
    )


def company_keys_refresh(*, company_ids: Iterable[int] | None = None) -> list[int]:
    """Compute the keys of these companies (every company with None) and store those that
    changed, or are new, marked for the next scan; their ids."""
    ids = None if company_ids is None else list(company_ids)
    computed = company_keys_compute(company_ids=ids)
    keys = CompanyMatchKey.objects.all()
    domain_keys = CompanyDomainKey.objects.all()
    if ids is not None:
        keys, domain_keys = keys.filter(company_id__in=ids), domain_keys.filter(company_id__in=ids)
    stored_names = dict(keys.values_list("company_id", "name_key"))
    stored_domains: dict[int, set[tuple[str, bool]]] = {}
    for pk, domain, web in domain_keys.values_list("company_id", "domain", "web").iterator(CHUNK):
        stored_domains.setdefault(pk, set()).add((domain, web))
    changed = [
        pk
        for pk, found in sorted(computed.items())
        if stored_names.get(pk) != found.name_key or stored_domains.get(pk, set()) != found.domains
    ]
    for start in range(0, len(changed), CHUNK):
        _keys_store({pk: computed[pk] for pk in changed[start : start + CHUNK]})
    return changed


def _keys_store(keys: dict[int, CompanyKeys]) -> None:
    CompanyMatchKey.objects.bulk_create(
        [
            CompanyMatchKey(company_id=pk, name_key=k.name_key, scanned=False)
            for pk, k in keys.items()
        ],
        update_conflicts=True,
        unique_fields=["company"],
        update_fields=["name_key", "scanned"],
    )
    CompanyNameWord.objects.filter(company_id__in=list(keys)).delete()
    CompanyNameWord.objects.bulk_create(
        [CompanyNameWord(company_id=pk, word=word) for pk, k in keys.items() for word in k.words],
        batch_size=1000,
    )
    CompanyDomainKey.objects.filter(company_id__in=list(keys)).delete()
    CompanyDomainKey.objects.bulk_create(
        [
            CompanyDomainKey(company_id=pk, domain=domain, web=web)
            for pk, k in keys.items()
            for domain, web in sorted(k.domains)
        ],
        batch_size=1000,
    )


# --- Finding pairs ----------------------------------------------------------------------


@dataclass(frozen=True)
class Match:
    company_a: int
    company_b: int
    kind: str
    score: float
    value: str | None


def _matches_sql(restrict: str) -> str:
    """SELECT the matches of the companies whose keys ``k`` ``restrict`` picks with every
    other company: (lower id, higher id, kind, score, domain shared). On PostgreSQL names
    match by ``%``, at the session's ``pg_trgm.similarity_threshold`` (set by
    ``_matches``), among the names that share a word (module docstring)."""
    postgres = connection.vendor == "postgresql"
    low, high = ("LEAST", "GREATEST") if postgres else ("MIN", "MAX")
    keys, domains = CompanyMatchKey._meta.db_table, CompanyDomainKey._meta.db_table
    words = CompanyNameWord._meta.db_table
    crowded_domains = (
        f"SELECT domain FROM {domains} GROUP BY domain HAVING COUNT(*) > {CROWDED_KEY}"
    )
    crowded_names = (
        f"SELECT name_key FROM {keys} WHERE name_key <> '' "
        f"GROUP BY name_key HAVING COUNT(*) > {CROWDED_KEY}"
    )
    by_domain = (
        f"SELECT {low}(a.company_id, b.company_id), {high}(a.company_id, b.company_id), "
        "CASE WHEN a.web AND b.web THEN 'domain' ELSE 'mail_domain' END, "
        f"CASE WHEN a.web AND b.web THEN {WEBSITES_SCORE} "
        f"WHEN a.web OR b.web THEN {WEBSITE_AND_MAIL_SCORE} ELSE {MAIL_SCORE} END, a.domain "
        f"FROM {domains} a JOIN {keys} k ON k.company_id = a.company_id "
        f"JOIN {domains} b ON b.domain = a.domain AND b.company_id <> a.company_id "
        f"WHERE {restrict} AND a.domain NOT IN ({crowded_domains})"
    )
    name_pair = f"{low}(k.company_id, b.company_id), {high}(k.company_id, b.company_id)"
    if postgres:
        crowded_words = f"SELECT word FROM {words} GROUP BY word HAVING COUNT(*) > {CROWDED_WORD}"
        by_name = (
            f"SELECT DISTINCT {name_pair}, 'name', similarity(k.name_key, b.name_key), NULL "
            f"FROM {keys} k JOIN {words} kw ON kw.company_id = k.company_id "
            f"JOIN {words} bw ON bw.word = kw.word AND bw.company_id <> k.company_id "
            f"JOIN {keys} b ON b.company_id = bw.company_id "
            f"WHERE {restrict} AND kw.word NOT IN ({crowded_words}) "
            f"AND k.name_key NOT IN ({crowded_names}) AND k.name_key %% b.name_key"
        )
    else:
        by_name = (
            f"SELECT {name_pair}, 'name', 1.0, NULL "
            f"FROM {keys} k JOIN {keys} b ON b.name_key = k.name_key "
            f"AND b.company_id <> k.company_id "
            f"WHERE k.name_key <> '' AND {restrict} AND k.name_key NOT IN ({crowded_names})"
        )
    return f"{by_domain} UNION ALL {by_name}"


def _matches(restrict: str, params: Sequence[Any], threshold: float) -> list[Match]:
    with transaction.atomic(), connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(
                "SELECT set_config('pg_trgm.similarity_threshold', %s, true)", [str(threshold)]
            )
        cursor.execute(_matches_sql(restrict), [*params, *params])
        return [Match(*row) for row in cursor.fetchall()]


def _grouped(matches: Iterable[Match]) -> dict[tuple[int, int], dict[str, Any]]:
    """Per pair: its reasons (one per kind, the surest) and its score, the surest
    reason's; sure when the two share a website."""
    pairs: dict[tuple[int, int], dict[str, Any]] = {}
    for match in sorted(matches, key=lambda m: (-float(m.score), m.value or "")):
        pair = pairs.setdefault(
            (match.company_a, match.company_b), {"reasons": [], "score": 0.0, "sure": False}
        )
        if any(r["kind"] == match.kind for r in pair["reasons"]):
            continue
        score = round(float(match.score), 3)
        reason: dict[str, Any] = {"kind": match.kind, "score": score}
        if match.value:
            reason["value"] = match.value
        pair["reasons"].append(reason)
        pair["score"] = max(pair["score"], score)
        pair["sure"] = pair["sure"] or match.kind == "domain"
    return pairs


# --- The nightly scan -------------------------------------------------------------------


@dataclass(frozen=True)
class CompanyScanResult:
    companies: int
    pairs: int
    new_pairs: int


def company_duplicates_scan(*, full: bool = False) -> CompanyScanResult:
    """Find the pairs of companies whose keys changed since the last scan (every company
    with ``full``) and store them in the review queue (module docstring)."""
    settings_row = DuplicateSettings.load()
    company_keys_refresh()
    if full:
        CompanyMatchKey.objects.filter(scanned=True).update(scanned=False)
    unscanned = list(
        CompanyMatchKey.objects.filter(scanned=False).order_by("pk").values_list("pk", flat=True)
    )
    pairs = _grouped(_matches("NOT k.scanned", [], settings_row.company_name_similarity))
    new = _pairs_store(pairs, rescanned=unscanned)
    for start in range(0, len(unscanned), CHUNK):
        CompanyMatchKey.objects.filter(pk__in=unscanned[start : start + CHUNK]).update(scanned=True)
    _pairs_purge()
    DuplicateSettings.objects.filter(pk=settings_row.pk).update(
        last_scan_companies=len(unscanned), last_scan_company_pairs=len(pairs)
    )
    return CompanyScanResult(companies=len(unscanned), pairs=len(pairs), new_pairs=new)


def _pairs_store(pairs: dict[tuple[int, int], dict[str, Any]], *, rescanned: list[int]) -> int:
    """Add new pairs, refresh the evidence of open ones, keep every answer given; drop
    the open pairs of rescanned companies whose evidence is gone. How many are new."""
    found = set(pairs)
    keys = sorted(found)
    existing: dict[tuple[int, int], CompanyDuplicatePair] = {}
    for start in range(0, len(keys), CHUNK):
        chunk = keys[start : start + CHUNK]
        rows = CompanyDuplicatePair.objects.filter(company_a__in={a for a, _ in chunk})
        existing.update(
            {
                (p.company_a_id, p.company_b_id): p
                for p in rows
                if (p.company_a_id, p.company_b_id) in found
            }
        )
    new = [
        CompanyDuplicatePair(company_a_id=a, company_b_id=b, **pairs[(a, b)])
        for a, b in keys
        if (a, b) not in existing
    ]
    CompanyDuplicatePair.objects.bulk_create(new, batch_size=1000, ignore_conflicts=True)
    refreshed = [p for p in existing.values() if p.status == PairStatus.OPEN]
    for pair in refreshed:
        found_now = pairs[(pair.company_a_id, pair.company_b_id)]
        pair.reasons, pair.score, pair.sure = (
            found_now["reasons"],
            found_now["score"],
            found_now["sure"],
        )
    CompanyDuplicatePair.objects.bulk_update(
        refreshed, ["reasons", "score", "sure"], batch_size=1000
    )
    for start in range(0, len(rescanned), CHUNK):
        ids = rescanned[start : start + CHUNK]
        gone = CompanyDuplicatePair.objects.open().filter(
            Q(company_a__in=ids) | Q(company_b__in=ids)
        )
        gone_ids = [p.pk for p in gone if (p.company_a_id, p.company_b_id) not in found]
        CompanyDuplicatePair.objects.filter(pk__in=gone_ids).delete()
    return len(new)


def _pairs_purge() -> int:
    """Drop open pairs whose company was deleted (pairs hold loose keys)."""
    companies = Company.objects.values("pk")
    deleted, _ = (
        CompanyDuplicatePair.objects.open()
        .filter(~Q(company_a__in=companies) | ~Q(company_b__in=companies))
        .delete()
    )
    return deleted


# --- Answers ----------------------------------------------------------------------------


def company_pair_not_duplicate(*, pair: CompanyDuplicatePair, by: User) -> None:
    """Remember that the two companies are different: never suggested again."""
    CompanyDuplicatePair.objects.filter(pk=pair.pk).update(
        status=PairStatus.NOT_DUPLICATE, decided_by=by, decided_at=timezone.now()
    )


def company_reason_text(reason: dict[str, Any]) -> str:
    """A reason for people: "same website acme.com", "leads write from acme.com",
    "names 82% alike"."""
    kind, value = reason.get("kind"), reason.get("value", "")
    if kind == "domain":
        return f"same website {value}".strip()
    if kind == "mail_domain":
        return f"same email domain {value}".strip()
    return f"names {round(float(reason.get('score', 0)) * 100)}% alike"

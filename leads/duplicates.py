"""Finding leads that are one person: by mailbox, phone, and name at one company.

Each lead's email, phone, name and company are reduced to keys that compare
(``LeadMatchKey``): the mailbox without its ``+tag`` (and Gmail's dots), the phone in
E.164 by ``phonenumbers`` (digits alone when it cannot be parsed), the name and the
company lower-cased, without accents, punctuation or legal suffixes. Two leads are
likely one person when they share the mailbox (sure: merged in bulk), the phone, or
the company with names alike: trigram similarity at least the admin's threshold
(``DuplicateSettings``) on PostgreSQL, equal names on SQLite.

The nightly scan (``duplicates_scan``) is incremental: it recomputes the keys of the
leads changed since their keys were taken and compares only those with everyone, in one
SQL statement whose joins run on the keys' indexes, never a loop over pairs. A key
that more than ``CROWDED_KEY`` leads share (``info@``, a switchboard number) says
nothing about people and is skipped. Pairs go to the review queue; a pair answered
"not a duplicate" keeps its answer.

A lead created or changed through any surface is compared at once, set-based, as the
night would compare it (``duplicates_note``): every profile write
(``leads.profiles.lead_save_profile``: the API, the admin, web forms, tracking calls)
and every chunk of an import. That comparison is advice: an error in it is logged, its
own writes are undone by a savepoint, and the write it follows goes on; the lead stays
unscanned, so the night compares it again. The API and the admin then name the likely
duplicates in the creator's view (``lead_duplicates``); nothing is ever blocked.
"""

from __future__ import annotations

import functools
import logging
import re
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from itertools import islice
from typing import Any

import phonenumbers
from django.db import connection, transaction
from django.db.models import Exists, F, OuterRef, Q
from django.db.models.expressions import RawSQL
from django.utils import timezone

from crm.models import User

from .models import DuplicatePair, DuplicateSettings, Lead, LeadMatchKey, PairStatus

logger = logging.getLogger(__name__)

# Leads sharing one key beyond this are not one person: the key is a placeholder.
CROWDED_KEY = 20
CHUNK = 2000
GMAIL_DOMAINS = {"gmail.com", "googlemail.com"}
LEGAL_SUFFIXES = {
    "ab", "ag", "as", "bv", "co", "company", "corp", "corporation", "gmbh", "inc",
    "incorporated", "kg", "limited", "llc", "llp", "ltd", "nv", "oy", "plc", "pty", "sa",
    "sarl", "sas", "spa", "srl", "the",
}  # fmt: skip
# How sure each kind of evidence is, 0 to 1; a name match scores its similarity.
REASON_SCORES = {"email": 1.0, "phone": 0.9}
# The lead fields the keys are read from: a change to one of them calls for a comparison.
KEY_FIELDS = frozenset(
    {"email", "phone", "country", "first_name", "last_name", "company", "company_id"}
)


# --- Keys -----------------------------------------------------------------------------


def email_key(email: str) -> str:
    """The mailbox an address reaches: lower-cased, without a ``+tag``; Gmail ignores
    dots and answers at googlemail.com too."""
    local, _, domain = (email or "").strip().lower().rpartition("@")
    local = local.split("+", 1)[0]
    if domain in GMAIL_DOMAINS:
        local, domain = local.replace(".", ""), "gmail.com"
    return f"{local}@{domain}" if local and domain else ""


# Numbers in E.164 formatted from a number ``phonenumbers`` took as valid (as an import
# cleans each one it reads), whose key is the number itself: parsed again it is the same
# number, so its key needs no second parse. At most ``OWN_KEYS_HELD`` are held.
_OWN_KEYS: set[str] = set()
OWN_KEYS_HELD = 50_000


def phone_key_is_itself(e164: str) -> None:
    """Note that ``e164`` was formatted in E.164 from a valid number: ``phone_key``
    answers it without parsing it again."""
    if len(_OWN_KEYS) >= OWN_KEYS_HELD:
        _OWN_KEYS.clear()
    _OWN_KEYS.add(e164)


def phone_key(phone: str, country: str = "") -> str:
    """The number in E.164, read in the lead's country when it has no ``+``; its digits
    when it cannot be parsed; "" for fewer than 7 digits."""
    if phone in _OWN_KEYS and len(phone) > 7:  # "+" and at least 7 digits
        return phone
    digits = re.sub(r"\D", "", phone or "")
    if len(digits) < 7:
        return ""
    try:
        number = phonenumbers.parse(phone, (country or "").upper() or None)
    except phonenumbers.NumberParseException:
        return digits
    if not phonenumbers.is_possible_number(number):
        return digits
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def text_key(text: str, *, drop: set[str] | None = None) -> str:
    """Lower-case words without accents or punctuation, single-spaced; ``drop`` words
    left out."""
    plain = unicodedata.normalize("NFKD", text or "").encode("ascii", "ignore").decode()
    words = re.sub(r"[^a-z0-9]+", " ", plain.lower()).split()
    return " ".join(w for w in words if not drop or w not in drop)


@functools.lru_cache(maxsize=16_384)
def company_key(name: str) -> str:
    """Remembered: a company's name recurs on the keys of each of its people."""
    return text_key(name, drop=LEGAL_SUFFIXES)


def lead_keys(lead: Lead) -> LeadMatchKey:
    """The match keys of a lead (with its company loaded), unsaved."""
    company = lead.company.name if lead.company else ""
    names = (lead.first_name, lead.last_name)
    return _keys((lead.pk, lead.email, lead.phone, lead.country, *names, company, lead.updated_at))


# What the keys are computed from, read as plain values (no model instances).
KEY_SOURCES = (
    "pk",
    "email",
    "phone",
    "country",
    "first_name",
    "last_name",
    "company__name",
    "updated_at",
)


def _keys(row: tuple[Any, ...], *, scanned: bool = False) -> LeadMatchKey:
    return LeadMatchKey(
        **dict(zip(["lead_id", *KEY_COLUMNS], _key_values(row, scanned), strict=True))
    )


def _key_values(row: tuple[Any, ...], scanned: bool) -> tuple[Any, ...]:
    """The values of a ``KEY_SOURCES`` row's keys, in the order of ``lead_id`` and
    ``KEY_COLUMNS``."""
    pk, email, phone, country, first_name, last_name, company, updated_at = row
    return (
        pk,
        email_key(email)[:254],
        phone_key(phone, country)[:20],
        text_key(f"{first_name} {last_name}")[:201],
        company_key(company or "")[:200],
        updated_at,
        scanned,
    )


KEY_COLUMNS = ["email_key", "phone_key", "name_key", "company_key", "lead_updated_at", "scanned"]


def _keys_write(rows: Iterable[tuple[Any, ...]], *, scanned: bool = False) -> int:
    """Compute and store the keys of ``KEY_SOURCES`` rows, ``CHUNK`` at a time; how many."""
    written = 0
    iterator = iter(rows)
    while batch := list(islice(iterator, CHUNK)):
        if connection.vendor == "postgresql":
            _keys_upsert([_key_values(row, scanned) for row in batch])
        else:
            LeadMatchKey.objects.bulk_create(
                [_keys(row, scanned=scanned) for row in batch],
                update_conflicts=True,
                unique_fields=["lead"],
                update_fields=KEY_COLUMNS,
            )
        written += len(batch)
    return written


def _keys_upsert(keys: list[tuple[Any, ...]]) -> None:
    """Insert or replace these keys (``_key_values``) in one statement of one array per
    column (PostgreSQL): the same rows as ``bulk_create(update_conflicts=True)`` without
    a model instance a lead, nor a statement of seven parameters a row."""
    columns = ["lead_id", *KEY_COLUMNS]
    types = ["bigint", "text", "text", "text", "text", "timestamptz", "boolean"]
    arrays = [list(column) for column in zip(*keys, strict=True)]
    updates = ", ".join(f"{name} = EXCLUDED.{name}" for name in KEY_COLUMNS)
    unnest = ", ".join(f"%s::{kind}[]" for kind in types)
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {LeadMatchKey._meta.db_table} ({', '.join(columns)}) "
            f"SELECT * FROM unnest({unnest}) "
            f"ON CONFLICT (lead_id) DO UPDATE SET {updates}",
            arrays,
        )


def match_keys_refresh(*, lead_ids: Iterable[int]) -> int:
    """Compute and store the keys of these leads, marked for the next scan; how many."""
    return _keys_write(Lead.objects.filter(pk__in=_ids(list(lead_ids))).values_list(*KEY_SOURCES))


def _ids(ids: list[int]) -> list[int] | RawSQL:
    """Ids for an ``__in`` filter: on PostgreSQL one array parameter, which spares Django
    resolving a chunk's thousands of ids one by one."""
    if connection.vendor != "postgresql":
        return ids
    return RawSQL("SELECT unnest(%s::bigint[])", [ids])


# --- Finding pairs ----------------------------------------------------------------------


@dataclass(frozen=True)
class Match:
    lead_a: int
    lead_b: int
    kind: str
    score: float


@dataclass(frozen=True)
class Picked:
    """The leads whose keys are compared with everyone's: a condition on a keys table
    ``{t}``, with its parameters."""

    condition: str
    params: tuple[Any, ...] = ()

    def on(self, alias: str) -> str:
        return self.condition.format(t=alias)


UNSCANNED = Picked("NOT {t}.scanned")
EVERYONE = Picked("TRUE")


def picked_leads(ids: Sequence[int]) -> Picked:
    """These leads (at most ``CHUNK``, for the parameters' sake on SQLite)."""
    if connection.vendor == "postgresql":
        return Picked("{t}.lead_id = ANY(%s)", (list(ids),))
    return Picked(f"{{t}}.lead_id IN ({', '.join(['%s'] * len(ids))})", tuple(ids))


def _matches_sql(picked: Picked) -> tuple[str, list[Any]]:
    """SELECT the matches of the picked leads' keys ``a`` with every other lead's keys
    ``b``: (lower id, higher id, kind, score); and its parameters. On PostgreSQL names
    match by ``%``, at the session's ``pg_trgm.similarity_threshold`` (set by
    ``_matches``).

    Each side of a join repeats the condition of its partial index (``<> ''``), so the
    index serves it. A pair of two picked leads is found once, from its lower id. A
    crowded key is skipped: the keys the picked leads hold are counted over the table,
    through the index, and those held by more than ``CROWDED_KEY`` leads anti-joined
    (``NOT EXISTS``, which PostgreSQL hashes; ``NOT IN`` turns into a list searched for
    every lead once the keys outgrow ``work_mem``). So one lead's comparison reads its
    own keys' index entries, and a night's the index entries of the night's keys."""
    postgres = connection.vendor == "postgresql"
    low, high = ("LEAST", "GREATEST") if postgres else ("MIN", "MAX")
    pair = f"{low}(a.lead_id, b.lead_id), {high}(a.lead_id, b.lead_id)"
    table = LeadMatchKey._meta.db_table
    name_score = "similarity(a.name_key, b.name_key)" if postgres else "1.0"
    name_match = "a.name_key %% b.name_key" if postgres else "a.name_key = b.name_key"
    once = f"{picked.on('a')} AND (b.lead_id > a.lead_id OR NOT ({picked.on('b')}))"
    crowded = (
        f"NOT EXISTS (SELECT 1 FROM (SELECT c.{{key}} FROM {table} c WHERE c.{{key}} <> '' "
        f"AND c.{{key}} IN (SELECT p.{{key}} FROM {table} p WHERE p.{{key}} <> '' "
        f"AND {picked.on('p')}) GROUP BY c.{{key}} HAVING COUNT(*) > {CROWDED_KEY}) crowded "
        f"WHERE crowded.{{key}} = a.{{key}})"
    )
    parts = [
        f"SELECT {pair}, '{kind}', {REASON_SCORES[kind]} FROM {table} a "
        f"JOIN {table} b ON b.{kind}_key = a.{kind}_key "
        f"WHERE a.{kind}_key <> '' AND b.{kind}_key <> '' AND b.lead_id <> a.lead_id "
        f"AND {once} AND {crowded.format(key=f'{kind}_key')}"
        for kind in ("email", "phone")
    ]
    # The cheap conditions first: the similarity is computed for the pairs left.
    parts.append(
        f"SELECT {pair}, 'name_company', {name_score} FROM {table} a "
        f"JOIN {table} b ON b.company_key = a.company_key "
        f"WHERE a.company_key <> '' AND a.name_key <> '' "
        f"AND b.company_key <> '' AND b.name_key <> '' AND b.lead_id <> a.lead_id "
        f"AND {once} AND {name_match}"
    )
    # The picked leads' parameters, in order: a and b in each part, p in the first two.
    uses = 3 + 3 + 2
    return " UNION ALL ".join(parts), list(picked.params) * uses


def _matches(picked: Picked, threshold: float) -> list[Match]:
    sql, params = _matches_sql(picked)
    with transaction.atomic(), connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            # No JIT: the joins' estimates run to millions of rows and PostgreSQL would
            # spend seconds compiling a statement that returns a few hundred.
            cursor.execute(
                "SELECT set_config('pg_trgm.similarity_threshold', %s, true), "
                "set_config('jit', 'off', true)",
                [str(threshold)],
            )
        cursor.execute(sql, params)
        return [Match(*row) for row in cursor.fetchall()]


def _grouped(matches: Iterable[Match]) -> dict[tuple[int, int], dict[str, Any]]:
    """Per pair: its reasons (one per kind) and its score, the surest reason's."""
    pairs: dict[tuple[int, int], dict[str, Any]] = {}
    for match in matches:
        pair = pairs.setdefault(
            (match.lead_a, match.lead_b), {"reasons": [], "score": 0.0, "sure": False}
        )
        if any(r["kind"] == match.kind for r in pair["reasons"]):
            continue
        score = round(float(match.score), 3)
        pair["reasons"].append({"kind": match.kind, "score": score})
        pair["score"] = max(pair["score"], score)
        pair["sure"] = pair["sure"] or match.kind == "email"
    return pairs


# --- The nightly scan -------------------------------------------------------------------


@dataclass(frozen=True)
class ScanResult:
    leads: int
    pairs: int
    new_pairs: int


def duplicates_scan(*, full: bool = False) -> ScanResult:
    """Find the pairs of the leads changed since the last scan and store them in the
    review queue (module docstring).

    The first scan, and one with ``full``, compares every lead with every other: the
    keys of all are computed and written as scanned, which spares writing every key
    row a second time to mark it. The keys are read as they are computed, through one
    cursor. The table is then analyzed (under a second at 1,000,000 leads), so the
    statement that finds the pairs is planned on what it now holds: planned on the
    statistics of the night before, which saw no unscanned key, it loops over the
    night's crowded-key counts once per lead compared (9 s instead of 2 s for 10,000
    leads at 1,000,000)."""
    started = timezone.now()
    settings_row = DuplicateSettings.load()
    everyone = full or not LeadMatchKey.objects.filter(scanned=True).exists()
    leads = Lead.objects.all()
    if not everyone:
        leads = leads.filter(
            Q(match_key__isnull=True) | Q(updated_at__gt=F("match_key__lead_updated_at"))
        )
    sources = leads.order_by("pk").values_list(*KEY_SOURCES).iterator(chunk_size=CHUNK)
    refreshed = _keys_write(sources, scanned=everyone)
    if everyone:
        compared, picked, rescanned = refreshed, EVERYONE, None
    else:
        unscanned = list(
            LeadMatchKey.objects.filter(scanned=False).order_by("pk").values_list("pk", flat=True)
        )
        compared, picked, rescanned = len(unscanned), UNSCANNED, unscanned
    _keys_analyze()
    pairs = _grouped(_matches(picked, settings_row.name_similarity))
    new = _pairs_store(pairs, rescanned=rescanned)
    for start in range(0, len(rescanned or []), CHUNK):
        chunk = (rescanned or [])[start : start + CHUNK]
        LeadMatchKey.objects.filter(pk__in=chunk).update(scanned=True)
    _pairs_purge()
    DuplicateSettings.objects.filter(pk=settings_row.pk).update(
        last_scan_at=started, last_scan_leads=compared, last_scan_pairs=len(pairs)
    )
    return ScanResult(leads=compared, pairs=len(pairs), new_pairs=new)


def _keys_analyze() -> None:
    """Fresh statistics of the keys table (PostgreSQL): how many are unscanned now."""
    if connection.vendor != "postgresql":
        return
    with connection.cursor() as cursor:
        cursor.execute(f"ANALYZE {LeadMatchKey._meta.db_table}")


def _pairs_store(
    pairs: dict[tuple[int, int], dict[str, Any]], *, rescanned: list[int] | None
) -> int:
    """Add new pairs, refresh the evidence of open ones, keep every answer given; drop
    the open pairs of rescanned leads (of every lead for ``None``) whose evidence is
    gone. How many are new."""
    found = set(pairs)
    keys = sorted(found)
    existing: dict[tuple[int, int], DuplicatePair] = {}
    for start in range(0, len(keys), CHUNK):
        chunk = keys[start : start + CHUNK]
        rows = DuplicatePair.objects.filter(lead_a__in={a for a, _ in chunk})
        existing.update(
            {(p.lead_a_id, p.lead_b_id): p for p in rows if (p.lead_a_id, p.lead_b_id) in found}
        )
    new = [
        DuplicatePair(lead_a_id=a, lead_b_id=b, **pairs[(a, b)])
        for a, b in keys
        if (a, b) not in existing
    ]
    DuplicatePair.objects.bulk_create(new, batch_size=1000, ignore_conflicts=True)
    refreshed = [p for key, p in existing.items() if p.status == PairStatus.OPEN]
    for pair in refreshed:
        found_now = pairs[(pair.lead_a_id, pair.lead_b_id)]
        pair.reasons, pair.score, pair.sure = (
            found_now["reasons"],
            found_now["score"],
            found_now["sure"],
        )
    DuplicatePair.objects.bulk_update(refreshed, ["reasons", "score", "sure"], batch_size=1000)
    _pairs_drop_gone(found, rescanned)
    return len(new)


def _pairs_drop_gone(found: set[tuple[int, int]], rescanned: list[int] | None) -> None:
    """Delete the open pairs of the rescanned leads (all, for ``None``) not found now."""
    if rescanned is None:
        open_pairs = DuplicatePair.objects.open().values_list("pk", "lead_a", "lead_b")
        gone = [pk for pk, a, b in open_pairs.iterator(chunk_size=CHUNK) if (a, b) not in found]
    else:
        gone = []
        for start in range(0, len(rescanned), CHUNK):
            rows = _open_pairs_of(rescanned[start : start + CHUNK])
            gone += [pk for pk, a, b in rows if (a, b) not in found]
    for start in range(0, len(gone), CHUNK):
        DuplicatePair.objects.filter(pk__in=gone[start : start + CHUNK]).delete()


def _open_pairs_of(leads: list[int]) -> list[tuple[int, int, int]]:
    """(id, lead_a, lead_b) of the open pairs of these leads. On PostgreSQL with the
    ids as one array each side (both sides read through their index), which spares
    Django resolving a chunk's thousands of ids one by one."""
    if connection.vendor != "postgresql":
        rows = DuplicatePair.objects.open().filter(Q(lead_a__in=leads) | Q(lead_b__in=leads))
        return list(rows.values_list("pk", "lead_a", "lead_b"))
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT id, lead_a_id, lead_b_id FROM {DuplicatePair._meta.db_table} "
            "WHERE status = %s AND (lead_a_id = ANY(%s) OR lead_b_id = ANY(%s))",
            [PairStatus.OPEN.value, leads, leads],
        )
        return cursor.fetchall()


def duplicate_pairs_forget(*, lead_ids: Sequence[int]) -> int:
    """Drop the open pairs of leads just deleted, so that the review queue does not
    offer them until the night's purge; answered pairs stay as the record. How many."""
    ids = list(lead_ids)
    deleted = 0
    for start in range(0, len(ids), CHUNK):
        chunk = ids[start : start + CHUNK]
        pairs = DuplicatePair.objects.open().filter(Q(lead_a__in=chunk) | Q(lead_b__in=chunk))
        deleted += pairs.delete()[0]
    return deleted


def _pairs_purge() -> int:
    """Drop open pairs whose lead was deleted (pairs hold loose keys). ``NOT EXISTS``,
    an anti-join by the leads' primary key: PostgreSQL runs ``NOT IN (SELECT id FROM
    leads)`` as a list searched per pair once the ids outgrow ``work_mem``, a time that
    grows as leads times pairs (over two minutes at 1,000,000 leads)."""
    gone = ~Exists(Lead.objects.filter(pk=OuterRef("lead_a_id"))) | ~Exists(
        Lead.objects.filter(pk=OuterRef("lead_b_id"))
    )
    deleted, _ = DuplicatePair.objects.open().filter(gone).delete()
    return deleted


# --- Leads created or changed now ------------------------------------------------------


def duplicates_record(*, lead_ids: Iterable[int]) -> dict[tuple[int, int], dict[str, Any]]:
    """Compare these leads with every lead now, as the nightly scan compares the leads
    that changed: their keys stored, their pairs put in the review queue with the
    evidence (answers kept), their open pairs whose evidence is gone dropped. Per
    ``CHUNK`` leads: one key write and one statement through the keys' indexes.

    The keys stay unscanned: the night compares these leads again, with the leads whose
    keys it is the first to take (written quietly, or by a transaction that had not
    committed yet). The pairs found, by (lower id, higher id)."""
    ids = sorted(set(lead_ids))
    if not ids:
        return {}
    threshold = DuplicateSettings.load().name_similarity
    found: dict[tuple[int, int], dict[str, Any]] = {}
    for start in range(0, len(ids), CHUNK):
        chunk = ids[start : start + CHUNK]
        match_keys_refresh(lead_ids=chunk)
        pairs = _grouped(_matches(picked_leads(chunk), threshold))
        _pairs_store(pairs, rescanned=chunk)
        found.update(pairs)
    return found


def duplicates_note(*, lead_ids: Iterable[int]) -> int:
    """``duplicates_record`` as advice to the write it follows (a create, an update, a
    chunk of an import), which it never fails: inside a savepoint, so an error undoes
    only its own writes and is logged; the leads are then compared by the nightly scan.
    How many pairs it found."""
    ids = list(lead_ids)
    if not ids:
        return 0
    try:
        with transaction.atomic():
            return len(duplicates_record(lead_ids=ids))
    except Exception:
        # Advice must not cost the write it follows; the night compares these leads.
        logger.exception("Duplicate detection failed for %d lead(s); left to the night", len(ids))
        return 0


def duplicates_note_profile(*, lead: Lead, created: bool, changed_fields: Iterable[str]) -> None:
    """After a lead's profile was written: compare it now when it is new or a field its
    keys are read from changed (``duplicates_note``)."""
    if created or KEY_FIELDS.intersection(changed_fields):
        duplicates_note(lead_ids=[lead.pk])


# --- One lead ---------------------------------------------------------------------------


@dataclass(frozen=True)
class LikelyDuplicate:
    lead: Lead
    reasons: list[dict[str, Any]]
    score: float


def lead_duplicates(*, lead: Lead, user: User, limit: int = 5) -> list[LikelyDuplicate]:
    """The leads in ``user``'s view that the review queue's open pairs put beside
    ``lead``, surest first: the warning on creating a lead. A lead whose keys are
    missing or older than the lead is compared first (``duplicates_record``); one
    written through ``lead_save_profile`` was compared by it. Pairs answered "not a
    duplicate" are left out. Advice: a failure leaves the list empty, never an error."""
    try:
        with transaction.atomic():
            return _likely_duplicates(lead, user, limit)
    except Exception:
        logger.exception("Duplicate warning failed for lead %s", lead.pk)
        return []


def _likely_duplicates(lead: Lead, user: User, limit: int) -> list[LikelyDuplicate]:
    current = LeadMatchKey.objects.filter(lead=lead.pk, lead_updated_at=lead.updated_at)
    if not current.exists():
        duplicates_record(lead_ids=[lead.pk])
    pairs = DuplicatePair.objects.open().filter(Q(lead_a=lead.pk) | Q(lead_b=lead.pk))
    others = {
        (p.lead_b_id if p.lead_a_id == lead.pk else p.lead_a_id): p
        for p in pairs.only("lead_a", "lead_b", "reasons", "score")
    }
    visible = Lead.objects.visible_to(user).in_bulk(list(others))
    ranked = sorted(others.items(), key=lambda item: (-item[1].score, item[0]))
    return [
        LikelyDuplicate(lead=visible[pk], reasons=pair.reasons, score=pair.score)
        for pk, pair in ranked
        if pk in visible
    ][:limit]


@dataclass(frozen=True)
class OpenPair:
    pair: DuplicatePair
    other: Lead
    evidence: str


def lead_open_pairs(*, lead: Lead, user: User, limit: int = 5) -> list[OpenPair]:
    """The review queue's open pairs that hold this lead and another lead ``user`` can
    see, surest first: what the lead page shows as possible duplicates. Two queries."""
    pairs = list(
        DuplicatePair.objects.open()
        .filter(Q(lead_a=lead.pk) | Q(lead_b=lead.pk))
        .order_by("-score", "pk")[:limit]
    )
    if not pairs:
        return []
    other = {p.pk: p.lead_b_id if p.lead_a_id == lead.pk else p.lead_a_id for p in pairs}
    visible = Lead.objects.visible_to(user).in_bulk(list(other.values()))
    return [
        OpenPair(
            pair=p,
            other=visible[other[p.pk]],
            evidence="; ".join(reason_text(r) for r in p.reasons),
        )
        for p in pairs
        if other[p.pk] in visible
    ]


def pair_not_duplicate(*, pair: DuplicatePair, by: User) -> None:
    """Remember that the two leads are different people: never suggested again."""
    DuplicatePair.objects.filter(pk=pair.pk).update(
        status=PairStatus.NOT_DUPLICATE, decided_by=by, decided_at=timezone.now()
    )


def reason_text(reason: dict[str, Any]) -> str:
    """A reason for people: "same mailbox", "same phone", "names 82% alike at one company"."""
    kind = reason.get("kind")
    if kind == "email":
        return "same mailbox"
    if kind == "phone":
        return "same phone"
    return f"names {round(float(reason.get('score', 0)) * 100)}% alike at one company"

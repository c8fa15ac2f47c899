"""The active scoring models compiled with their rules into plain values (a ``Ruleset``),
and the short-lived cache real-time scoring reads them from."""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from django.db.models import Count, Max

from leads.models import CustomFieldDefinition

from .models import DomainList, DomainListKind, Rule, ScoringModel
from .models.rule import custom_field_kinds
from .rule_fields import RuleError
from .rules import FIT, MACHINE_MARKED_TYPES, RuleSpec
from .score_formula import Thresholds


@dataclass
class CompiledModel:
    id: int
    name: str
    priority: int
    is_default: bool
    segment: frozenset[str]
    thresholds: Thresholds
    half_life_days: float | None
    idle_week_penalty: int
    mql_threshold: int
    sql_threshold: int
    surge_points: int
    surge_hours: int
    decay_version: int = 1
    fit_rules: list[RuleSpec] = field(default_factory=list)
    engagement_rules: list[RuleSpec] = field(default_factory=list)
    rules_by_id: dict[int, RuleSpec] = field(default_factory=dict)

    def applies_to(self, product_slugs: Iterable[str]) -> bool:
        return self.is_default or bool(self.segment & set(product_slugs))


@dataclass
class Ruleset:
    """Every active model with its rules, and the domain lists the rules refer to."""

    models: list[CompiledModel]
    domain_lists: dict[str, frozenset[str]]
    # Every fit rule of the models, active or not: a rule a later change broke or turned
    # off may still have awards in the ledger (the fast path's fit check reads them).
    all_fit_rule_ids: frozenset[int] = frozenset()

    def for_lead(self, product_slugs: Iterable[str]) -> list[CompiledModel]:
        slugs = set(product_slugs)
        return [m for m in self.models if m.applies_to(slugs)]

    def property_types(self) -> frozenset[str]:
        """The activity types whose ``properties`` a rule reads: the ones a rule tests a
        property of, and opens and clicks (a machine's are marked in their properties)."""
        tested = {
            rule.activity_type
            for model in self.models
            for rule in model.engagement_rules
            if rule.target.startswith("property:")
        }
        return MACHINE_MARKED_TYPES | tested


# Real-time scoring reuses the compiled rules while their fingerprint is unchanged, and
# never for longer than this: edits the fingerprint cannot see (a domain renamed in
# place) are picked up within seconds. Rescores and verification always compile afresh
# (a rescore job once, for all its ranges: ``load_job_ruleset``).
CACHE_SECONDS = 5.0
_cache: dict[str, Any] = {"version": None, "ruleset": None, "at": 0.0}


def _version() -> tuple[Any, ...]:
    models = ScoringModel.objects.aggregate(at=Max("updated_at"), n=Max("id"), c=Count("id"))
    rules = Rule.objects.aggregate(at=Max("updated_at"), n=Max("id"), c=Count("id"))
    segments = ScoringModel.segment_product_lines.through.objects.aggregate(
        n=Max("id"), c=Count("id")
    )
    lists = DomainList.objects.aggregate(n=Max("id"), c=Count("id"))
    fields = CustomFieldDefinition.objects.aggregate(n=Max("id"), c=Count("id"))
    return tuple(tuple(part.values()) for part in (models, rules, segments, lists, fields))


def load_ruleset(models: Sequence[ScoringModel] | None = None, *, fresh: bool = False) -> Ruleset:
    """The active models (or the given ones, e.g. a draft being previewed), compiled."""
    if models is None:
        version = _version()
        age = time.monotonic() - _cache["at"]
        if not fresh and _cache["version"] == version and age < CACHE_SECONDS:
            return _cache["ruleset"]
        models = list(ScoringModel.objects.active().prefetch_related("segment_product_lines"))
    else:
        version = None
    kinds = custom_field_kinds()
    compiled = [compile_model(model, kinds) for model in models]
    lists: dict[str, set[str]] = defaultdict(set)
    for kind, domain in DomainList.objects.values_list("kind", "domain"):
        lists[kind].add(domain)
    fit_rule_ids = Rule.objects.filter(
        model_id__in=[model.id for model in compiled], kind=FIT
    ).values_list("pk", flat=True)
    ruleset = Ruleset(
        compiled, {k: frozenset(v) for k, v in lists.items()}, frozenset(fit_rule_ids)
    )
    if version is not None:
        _cache.update(version=version, ruleset=ruleset, at=time.monotonic())
    return ruleset


# The ruleset a rescore job's ranges score against, compiled for the job's first range
# this process runs: (job id, fingerprint) and the ruleset.
_job_cache: dict[str, Any] = {"key": None, "ruleset": None}


def load_job_ruleset(job_id: int) -> Ruleset:
    """The active models compiled for rescore job ``job_id``: afresh for the first of its
    ranges this process runs, then reused by the others while the fingerprint stays the
    same, so the job's ranges score against the same rules and a range does not compile
    the models again (hundreds of ranges a job at 1,000,000 leads)."""
    key = (job_id, _version())
    if _job_cache["key"] != key:
        _job_cache.update(key=key, ruleset=load_ruleset(fresh=True))
    return _job_cache["ruleset"]


def model_settings(model: ScoringModel, segment: frozenset[str] = frozenset()) -> CompiledModel:
    """The model's thresholds, decay and hooks without its rules: what turns stored
    fit and engagement into a score, band and grade (the explanation needs no more)."""
    return CompiledModel(
        id=model.pk,
        name=model.name,
        priority=model.priority,
        is_default=model.is_default,
        segment=segment,
        thresholds=model.thresholds,
        half_life_days=model.decay_half_life_days,
        idle_week_penalty=model.idle_week_penalty,
        mql_threshold=model.mql_threshold,
        sql_threshold=model.sql_threshold,
        surge_points=model.surge_points,
        surge_hours=model.surge_hours,
        decay_version=model.decay_version,
    )


def compile_model(model: ScoringModel, kinds: dict[str, str]) -> CompiledModel:
    segment = frozenset(p.slug for p in model.segment_product_lines.all())
    compiled = model_settings(model, segment)
    for rule in model.rules.filter(active=True):
        try:
            spec = rule.spec(kinds)
        except RuleError:
            # A rule broken by a later change (a deleted custom field) scores nothing.
            continue
        compiled.rules_by_id[rule.pk] = spec
        target = compiled.fit_rules if spec.kind == FIT else compiled.engagement_rules
        target.append(spec)
    return compiled


def free_mail_listed() -> list[str]:
    """The domains on the marketers' free-mail list, which ``leads`` asks for to tell a
    company's domain from a mailbox provider's (``leads.company_domains``)."""
    listed = DomainList.objects.filter(kind=DomainListKind.FREE_MAIL)
    return list(listed.values_list("domain", flat=True))

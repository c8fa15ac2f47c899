"""Changes to scoring models and rules: the change log and the rescore each change needs.

Every surface that edits models or rules (the admin's change form, the REST API) calls
these, so a change is logged and rescored the same way wherever it was made:

- a new or changed rule of a live model rescores only what that rule touches (a points
  change is a delta over the rule's rows, a condition change rescans the activity types
  the rule reads: ``scoring.bulk``);
- a deleted rule of a live model, or a change to the model itself (fields, segment,
  status), rescores the model's leads in full; so does a change to a model out of
  service that still has ledger entries (one going out of service reverses its points);
- a rule created, changed or deleted on a model out of service changes no score, so it
  queues nothing: the model's own move to draft or archived queued the rescore that
  reversed its points.

Duplicating a model into a draft and activating a draft go through the same log and
rescore. Call them inside ``transaction.atomic()``: the jobs are queued after commit.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from django.db import transaction
from django.forms.models import model_to_dict

from crm.models import User

from .models import ChangeLog, ModelStatus, RescoreJob, Rule, ScoringModel
from .predictive.services import predictive_carry_over
from .rescore_jobs import rescore_job_start

Snapshot = dict[str, Any]


@dataclass
class ModelEdit:
    """What one save of a model changed: the model itself, created or changed rules, deletions."""

    model: ScoringModel
    model_changed: bool = False
    rule_ids: set[int] = field(default_factory=set)
    rules_deleted: bool = False
    # The model as it was (``model_snapshot``), when its own fields may have changed.
    before: Snapshot | None = None
    # Rules of which only the points changed, with their points before.
    points_before: dict[int, int] = field(default_factory=dict)

    def rule_changed(self, rule: Rule, before: Snapshot | None) -> None:
        """Count ``rule`` (stored as it was in ``before``) among the edit's changed rules,
        noting its points before when they are all that changed."""
        self.rule_ids.add(rule.pk)
        points = points_change(before, snapshot(rule))
        if points is not None:
            self.points_before[rule.pk] = points


def model_snapshot(*, model: ScoringModel) -> Snapshot:
    """The model as stored, to pass as ``before`` to ``model_save``; its segment included."""
    stored = ScoringModel.objects.get(pk=model.pk)
    return {**snapshot(stored), "segment": _segment(stored)}


def model_save(
    *, model: ScoringModel, before: Snapshot | None, by: User | None, reason: str
) -> list[RescoreJob]:
    """Log a model just created (``before`` None) or changed, and queue its rescore.

    ``before`` comes from ``model_snapshot`` taken before the save; a save that changed
    nothing is neither logged nor rescored.
    """
    if not model_change_record(model=model, before=before, by=by):
        return []
    edit = ModelEdit(model=model, model_changed=True, before=before)
    return edit_rescore(edit=edit, by=by, reason=reason)


def model_change_record(*, model: ScoringModel, before: Snapshot | None, by: User | None) -> bool:
    """Log a created or changed model; whether it changed at all."""
    after = {**snapshot(model), "segment": _segment(model)}
    if before == after:
        return False
    logged = None if before is None else {k: v for k, v in before.items() if k != "segment"}
    action = "create" if before is None else "change"
    changelog_record(obj=model, action=action, before=logged, by=by)
    return True


def rule_snapshot(*, rule: Rule) -> Snapshot | None:
    """The rule as stored (None for a rule not saved yet), to pass as ``before``."""
    return snapshot(Rule.objects.get(pk=rule.pk)) if rule.pk else None


def rule_save(*, rule: Rule, before: Snapshot | None, by: User | None) -> list[RescoreJob]:
    """Log a rule just created (``before`` None) or changed, and queue what it needs."""
    if not rule_change_record(rule=rule, before=before, by=by):
        return []
    edit = ModelEdit(model=rule.model)
    edit.rule_changed(rule, before)
    return edit_rescore(edit=edit, by=by, reason="")


def points_change(before: Snapshot | None, after: Snapshot) -> int | None:
    """The points before, when a change of a rule changed its points and nothing else."""
    if before is None:
        return None
    changed = {key for key in before.keys() | after.keys() if before.get(key) != after.get(key)}
    return before["points"] if changed == {"points"} else None


def rule_change_record(*, rule: Rule, before: Snapshot | None, by: User | None) -> bool:
    """Log a created or changed rule; whether it changed at all."""
    if before == snapshot(rule):
        return False
    action = "create" if before is None else "change"
    changelog_record(obj=rule, action=action, before=before, by=by)
    return True


def rule_delete(*, rule: Rule, by: User | None, rescore: bool = True) -> list[RescoreJob]:
    """Log and delete a rule, then rescore its model in full (unless ``rescore`` is False,
    for a caller that rescores the whole edit with ``edit_rescore``)."""
    before = rule_snapshot(rule=rule)
    model = rule.model
    changelog_record(obj=rule, action="delete", before=before, by=by)
    rule.delete()
    if not rescore:
        return []
    edit = ModelEdit(model=model, rules_deleted=True)
    return edit_rescore(edit=edit, by=by, reason=f"Rule “{rule}” deleted")


def edit_rescore(*, edit: ModelEdit, by: User | None, reason: str) -> list[RescoreJob]:
    """Queue the cheapest rescore that makes ``edit`` true for every lead (module docstring)."""
    model = edit.model
    if model.status != ModelStatus.ACTIVE:
        if edit.model_changed and model.entries.exists():
            return [rescore_job_start(model=model, reason=reason, by=by)]
        return []
    if edit.model_changed or edit.rules_deleted:
        lowered = _thresholds_lowered(model, edit.before)
        basis = _basis_changed(model, edit.before)
        if basis is not None and edit.before is not None and lowered is None:
            # Leads the new basis puts past a threshold move, judged against the
            # thresholds as they were.
            lowered = (edit.before["mql_threshold"], edit.before["sql_threshold"])
        return [
            rescore_job_start(
                model=model,
                reason=reason,
                by=by,
                thresholds_before=lowered,
                basis_before=basis,
            )
        ]
    rules = Rule.objects.filter(model=model, pk__in=edit.rule_ids).order_by("pk")
    return [
        rescore_job_start(
            model=model,
            rule=rule,
            reason=f"Rule “{rule}” changed",
            by=by,
            points_before=edit.points_before.get(rule.pk),
        )
        for rule in rules
    ]


def _thresholds_lowered(model: ScoringModel, before: Snapshot | None) -> tuple[int, int] | None:
    """The (MQL, SQL) thresholds before the change, when it lowered one of them."""
    if before is None or "mql_threshold" not in before:
        return None
    old = (before["mql_threshold"], before["sql_threshold"])
    if model.mql_threshold < old[0] or model.sql_threshold < old[1]:
        return old
    return None


def _basis_changed(model: ScoringModel, before: Snapshot | None) -> tuple[str, int] | None:
    """The score the model decided on before the change (``decide_on`` and the predictive
    share), when the change moved it."""
    if before is None or "decide_on" not in before:
        return None
    old = (before["decide_on"], before["predictive_share"])
    return old if old != (model.decide_on, model.predictive_share) else None


def _segment(model: ScoringModel) -> list[int]:
    return sorted(model.segment_product_lines.values_list("pk", flat=True)) if model.pk else []


def model_duplicate(*, model: ScoringModel, by: User | None = None) -> ScoringModel:
    """Copy a model and its rules into a new draft that can be edited and previewed safely:
    a candidate version of the model (``version_of``), previewed on its leads and
    published in its place (``model_publish``). Changing the draft touches no lead."""
    with transaction.atomic():
        rules = list(model.rules.all())
        segment = list(model.segment_product_lines.all())
        copy = ScoringModel.objects.get(pk=model.pk)
        copy.pk = None
        copy.name = _free_name(f"{model.name} (draft)")
        copy.status = ModelStatus.DRAFT
        copy.is_default = False
        # A draft of a draft is a version of the same live model.
        copy.version_of = model.version_of if model.is_candidate else model
        copy.save()
        copy.segment_product_lines.set(segment)
        for rule in rules:
            rule.pk = None
            rule.model = copy
        Rule.objects.bulk_create(rules)
        # Logged as created; a draft without entries queues no rescore.
        model_save(model=copy, before=None, by=by, reason="Model duplicated")
    return copy


def _free_name(name: str) -> str:
    candidate, n = name, 2
    while ScoringModel.objects.filter(name=candidate).exists():
        candidate, n = f"{name} {n}", n + 1
    return candidate


class PublishError(Exception):
    """A version that cannot be published or rolled back; the message says why."""


def model_publish(
    *, model: ScoringModel, by: User | None = None, figures: Snapshot | None = None
) -> list[RescoreJob]:
    """Put the candidate ``model`` in the place of the model it is a version of, in one
    transaction: it takes that model's segment, default role and priority and goes live;
    the other is archived and kept (``version_of`` links them) to roll back to. Both are
    logged and rescored on the bulk queue: the archived one's points reversed, the new
    one's awarded, stages moving only where a lead's score crosses a threshold.
    ``figures``, the preview the publisher saw (``scoring.version_preview``), are kept with the
    publication in the change log. Raises ``PublishError`` for a model that is not a
    candidate of a live model."""
    with transaction.atomic():
        model = ScoringModel.objects.select_for_update().get(pk=model.pk)
        live = _version_locked(model.version_of_id) if model.is_candidate else None
        if live is None or live.status != ModelStatus.ACTIVE:
            raise PublishError(f"“{model}” is not a draft version of a live model.")
        return _replace(live=live, new=model, by=by, action="publish", figures=figures)


def model_rollback(*, model: ScoringModel, by: User | None = None) -> list[RescoreJob]:
    """Put back the version the live ``model`` replaced (``model_publish``), archiving
    ``model``. Raises ``PublishError`` when it replaced none, or that one is gone."""
    with transaction.atomic():
        model = ScoringModel.objects.select_for_update().get(pk=model.pk)
        previous = _version_locked(model.version_of_id)
        if model.status != ModelStatus.ACTIVE or previous is None:
            raise PublishError(f"“{model}” replaced no version that could be put back.")
        if previous.status != ModelStatus.ARCHIVED:
            raise PublishError(f"“{previous}” is {previous.get_status_display().lower()}.")
        # ``previous`` keeps its own link, so a second roll back goes one version further.
        return _replace(live=model, new=previous, by=by, action="roll back")


def _version_locked(pk: int | None) -> ScoringModel | None:
    if pk is None:
        return None
    return ScoringModel.objects.select_for_update().filter(pk=pk).first()


def _replace(
    *,
    live: ScoringModel,
    new: ScoringModel,
    by: User | None,
    action: str,
    figures: Snapshot | None = None,
) -> list[RescoreJob]:
    """Archive ``live`` and make ``new`` live in its place; log and rescore both."""
    live_before, new_before = snapshot(live), snapshot(new)
    segment = list(live.segment_product_lines.all())
    live.status, was_default, live.is_default = ModelStatus.ARCHIVED, live.is_default, False
    live.save(update_fields=["status", "is_default", "updated_at"])
    new.status, new.is_default, new.priority = ModelStatus.ACTIVE, was_default, live.priority
    new.save(update_fields=["status", "is_default", "priority", "updated_at"])
    new.segment_product_lines.set(segment)
    # The predictive score follows the live version (filled in after its rescore).
    predictive_carry_over(old=live, new=new)
    changelog_record(obj=live, action="archive", before=live_before, by=by)
    changelog_record(obj=new, action=action, before=new_before, by=by, figures=figures)
    reason = f"“{new}” {'published' if action == 'publish' else 'put back'} in place of “{live}”"
    # Thresholds lower than the replaced version's move the leads already past them.
    replaced = {
        "mql_threshold": live.mql_threshold,
        "sql_threshold": live.sql_threshold,
        "decide_on": live.decide_on,
        "predictive_share": live.predictive_share,
    }
    return [
        *edit_rescore(edit=ModelEdit(model=live, model_changed=True), by=by, reason=reason),
        *edit_rescore(
            edit=ModelEdit(model=new, model_changed=True, before=replaced), by=by, reason=reason
        ),
    ]


def model_activate(*, model: ScoringModel, by: User | None = None) -> RescoreJob:
    """Make a draft live, log it, and rescore its leads on the bulk queue. A candidate
    version is published instead (``model_publish``)."""
    if model.is_candidate:
        return model_publish(model=model, by=by)[-1]
    with transaction.atomic():
        before = snapshot(model)
        model.status = ModelStatus.ACTIVE
        model.save(update_fields=["status", "updated_at"])
        changelog_record(obj=model, action="activate", before=before, by=by)
        edit = ModelEdit(model=model, model_changed=True)
        [job] = edit_rescore(edit=edit, by=by, reason="Model activated")
        return job


def snapshot(obj: ScoringModel | Rule) -> Snapshot:
    """The object's fields as JSON values, as the change log stores them."""
    data = model_to_dict(obj)
    data.pop("segment_product_lines", None)
    return {
        key: (str(value) if not isinstance(value, int | float | bool | str | None) else value)
        for key, value in data.items()
    }


def changelog_record(
    *,
    obj: ScoringModel | Rule,
    action: str,
    before: Snapshot | None,
    by: User | None,
    figures: Snapshot | None = None,
) -> ChangeLog:
    """Append one change of a model or rule to the change log (``after`` is read from ``obj``)."""
    after = None if action == "delete" else snapshot(obj)
    return ChangeLog.objects.create(
        object_type=obj._meta.model_name or "",
        object_id=obj.pk,
        object_repr=str(obj)[:200],
        action=action,
        before=before,
        after=after,
        by=by,
        figures=figures,
    )

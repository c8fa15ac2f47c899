"""The admin of deals and of the deal pipeline: the stages (with their probabilities and
rotting limits) and the pick-list of lost reasons, which admins and marketers edit;
and deals, written through ``leads.deals`` like everywhere else, so that a deal won
here makes its lead a customer too."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin
from django.core.exceptions import ValidationError
from django.db.models import Q, QuerySet
from django.http import HttpRequest
from django.utils import timezone

from crm.http import signed_in
from crm.models import User

from ..deals import (
    DEAL_CHANGEABLE,
    DEAL_CLOSING,
    DEAL_EDITABLE,
    DISQUALIFIED_CANNOT_WIN,
    deal_create,
    deal_update,
    deals_delete,
    lost_reason_clean,
)
from ..models import Deal, DealStage, DealStatus, LostReason, Stage, owner_visibility
from ..permissions import OWNER_REFUSED, may_own
from .access import UserBoundForm, UserBoundFormMixin, VisibleLeadRowsMixin


@admin.register(DealStage)
class DealStageAdmin(admin.ModelAdmin):
    list_display = ("name", "position", "probability", "rot_days")
    list_editable = ("position", "probability", "rot_days")
    search_fields = ("name",)


@admin.register(LostReason)
class LostReasonAdmin(admin.ModelAdmin):
    list_display = ("name", "position", "active")
    list_editable = ("position", "active")
    list_filter = ("active",)
    search_fields = ("name",)


class DealClosingForm(forms.ModelForm):
    """What ``leads.deals`` would refuse, said on the form: a lost deal's reason from
    the pick-list, a won deal on a lead that can become a customer. A closed deal
    without a close time closes now; an open one has none."""

    def clean(self) -> dict[str, Any]:
        super().clean()
        data = self.cleaned_data
        status = data.get("status")
        if status is None:
            return data
        if status == DealStatus.OPEN:
            data["closed_at"] = None
        elif not data.get("closed_at"):
            data["closed_at"] = timezone.now()
        if status == DealStatus.LOST:
            try:
                data["lost_reason"] = lost_reason_clean(data.get("lost_reason", ""))
            except ValidationError as error:
                self.add_error("lost_reason", error.messages)
        else:
            data["lost_reason"] = ""
        lead = data.get("lead") or getattr(self.instance, "lead", None)
        winning = status == DealStatus.WON and self.initial.get("status") != DealStatus.WON
        if winning and lead is not None and lead.stage == Stage.DISQUALIFIED:
            self.add_error("status", DISQUALIFIED_CANNOT_WIN)
        return data


class DealAdminForm(DealClosingForm, UserBoundForm):
    def clean_owner(self) -> User | None:
        owner = self.cleaned_data.get("owner")
        current = self.instance.owner if self.instance.owner_id else None
        if not may_own(user=self.user, owner=owner, current=current):
            raise forms.ValidationError(OWNER_REFUSED)
        return owner


def deal_write_from_form(*, form: forms.ModelForm, by: User) -> Deal:
    """Store what a deal's admin form holds through ``leads.deals``: a new deal is
    created, then closed when the form says so; a changed one gets the changed fields.
    ``form.instance`` is read from the database again afterwards."""
    deal = form.instance
    changed = set(form.changed_data)
    if deal._state.adding:
        fields = {name: getattr(deal, name) for name in DEAL_EDITABLE if name in form.fields}
        created = deal_create(lead=deal.lead, by=by, **fields)
        later = {name for name in (*DEAL_CLOSING, "created_at") if name in form.fields}
        if deal.status != DealStatus.OPEN or "created_at" in changed:
            deal_update(deal=created, by=by, changes={name: getattr(deal, name) for name in later})
        deal.pk = created.pk
    else:
        stored = Deal.objects.get(pk=deal.pk)
        names = (DEAL_CHANGEABLE | DEAL_CLOSING) & changed
        deal_update(deal=stored, by=by, changes={name: getattr(deal, name) for name in names})
    deal.refresh_from_db()
    return deal


@admin.register(Deal)
class DealAdmin(UserBoundFormMixin, VisibleLeadRowsMixin, admin.ModelAdmin):
    form = DealAdminForm
    list_display = (
        "name",
        "lead",
        "amount",
        "currency",
        "status",
        "stage",
        "expected_close",
        "owner",
        "closed_at",
    )
    list_filter = ("status", "stage", "currency", "product_line")
    list_select_related = ("lead", "stage", "owner")
    search_fields = ("name", "lead__email")
    raw_id_fields = ("lead",)
    autocomplete_fields = ("owner",)
    readonly_fields = ("stage_changed_at",)

    def visible_filter(self, request: HttpRequest) -> Q:
        return owner_visibility(signed_in(request), lead="lead__")

    def save_model(self, request: HttpRequest, obj: Deal, form, change: bool) -> None:
        deal_write_from_form(form=form, by=signed_in(request))

    def delete_model(self, request: HttpRequest, obj: Deal) -> None:
        deals_delete(deals=Deal.objects.filter(pk=obj.pk))

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[Deal]) -> None:
        deals_delete(deals=queryset)

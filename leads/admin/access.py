"""What every admin page of ``leads`` shares: change forms that know who fills them
in, and rows listed and written only on the leads their user may see."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin
from django.db.models import ForeignKey, Q, QuerySet
from django.forms import ModelChoiceField
from django.http import HttpRequest

from crm.http import signed_in
from crm.models import User

from ..models import Lead


class UserBoundForm(forms.ModelForm):
    """A change form that knows who fills it in (set per request by ``UserBoundFormMixin``)."""

    user: User


class UserBoundFormMixin(admin.ModelAdmin):
    def get_form(
        self, request: HttpRequest, obj: Any = None, change: bool = False, **kwargs: Any
    ) -> type[forms.ModelForm]:
        form = super().get_form(request, obj, change=change, **kwargs)
        # ``get_form`` builds a new class on every call: the user stays with this request.
        if issubclass(form, UserBoundForm):
            form.user = signed_in(request)
        return form


class VisibleLeadRowsMixin(admin.ModelAdmin):
    """Rows that belong to a lead are listed only when the user may see that lead, and
    are written only on such a lead."""

    def get_queryset(self, request: HttpRequest) -> QuerySet:
        queryset = super().get_queryset(request)
        if signed_in(request).sees_all_leads:
            return queryset
        return queryset.filter(self.visible_filter(request))

    def formfield_for_foreignkey(
        self, db_field: ForeignKey, request: HttpRequest, **kwargs: Any
    ) -> ModelChoiceField | None:
        if db_field.name == "lead":
            kwargs["queryset"] = Lead.objects.visible_to(signed_in(request))
        return super().formfield_for_foreignkey(db_field, request, **kwargs)

    def visible_filter(self, request: HttpRequest) -> Q:
        return Q(lead__in=Lead.objects.visible_to(signed_in(request)))

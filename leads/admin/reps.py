"""The user admin, with the product lines a rep sells.

The relation is ``ProductLine.reps``, declared in ``leads`` so that ``crm`` knows nothing
of leads; ``leads`` sits above ``crm``, so it extends the user admin that ``crm``
registered with the field, in the same place and widget as before.
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin
from django.contrib.admin.widgets import FilteredSelectMultiple
from django.contrib.auth.forms import UserChangeForm
from django.http import HttpRequest

from crm.admin import UserAdmin
from crm.models import User

from ..models import ProductLine

PRODUCT_LINES = "product_lines"


class RepChangeForm(UserChangeForm):
    product_lines = forms.ModelMultipleChoiceField(
        queryset=ProductLine.objects.all(),
        required=False,
        widget=FilteredSelectMultiple("product lines", is_stacked=False),
        help_text="The product lines this rep sells; assignment rules by product use them.",
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if self.instance.pk is not None:
            self.fields[PRODUCT_LINES].initial = list(self.instance.product_lines.all())


admin.site.unregister(User)


@admin.register(User)
class RepAdmin(UserAdmin):
    form = RepChangeForm
    fieldsets = tuple(
        (name, {**options, "fields": (*options["fields"], PRODUCT_LINES)})
        if name == "Sales"
        else (name, options)
        for name, options in UserAdmin.fieldsets
    )

    def save_related(self, request: HttpRequest, form: Any, formsets: Any, change: bool) -> None:
        super().save_related(request, form, formsets, change)
        if PRODUCT_LINES in form.cleaned_data:
            form.instance.product_lines.set(form.cleaned_data[PRODUCT_LINES])

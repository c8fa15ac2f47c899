"""Re-posting Django admin change forms from tests, as a browser would."""

from __future__ import annotations

from typing import Any

from django import forms
from django.http import HttpResponse


def _field_data(bound: forms.BoundField) -> dict[str, Any]:
    value = bound.value()
    widget = bound.field.widget
    if isinstance(widget, forms.MultiWidget):
        parts = widget.decompress(value) if not isinstance(value, list) else value
        return {
            f"{bound.html_name}_{i}": "" if part is None else str(part)
            for i, part in enumerate(parts)
        }
    if value is None or value is False:
        return {}  # an empty box or an unticked checkbox sends nothing
    if value is True:
        return {bound.html_name: "on"}
    if isinstance(value, list | tuple):
        return {bound.html_name: [str(v) for v in value]}
    return {bound.html_name: str(value)}


def changeform_data(response: HttpResponse) -> dict[str, Any]:
    """The POST body that saving the rendered admin change form unchanged would send."""
    form_list: list[forms.BaseForm] = [response.context["adminform"].form]
    for inline in response.context["inline_admin_formsets"]:
        form_list.append(inline.formset.management_form)
        form_list.extend(inline.formset.forms)
    data: dict[str, Any] = {}
    for form in form_list:
        for bound in form:
            data.update(_field_data(bound))
    return data


def inline_key(data: dict[str, Any], prefix: str, pk: int, name: str) -> str:
    """The POST key of field ``name`` in the inline form of the row ``pk``, in whichever
    of the inlines whose prefix starts with ``prefix`` lists it."""
    for total in [key for key in data if key.startswith(prefix) and key.endswith("-TOTAL_FORMS")]:
        group = total.removesuffix("-TOTAL_FORMS")
        for i in range(int(data[total])):
            if data.get(f"{group}-{i}-id") == str(pk):
                return f"{group}-{i}-{name}"
    raise KeyError(f"no inline row {pk} under {prefix}")

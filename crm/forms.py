"""Form rendering: Django's own form and widget templates through Jinja2, and a select
widget written out in Python.

Django renders every ``<option>`` of a select through its template engine, one include
per option; a leads list with a dozen filters and a bulk form spends about twice as long
in its widgets as Jinja2's compiled versions of the same templates (which Django ships
in ``django/forms/jinja2``). Templates only the Django engine has, such as the admin's
widget wrappers, are still found there.
"""

from __future__ import annotations

from functools import cached_property
from typing import Any

from django import forms
from django.forms.renderers import BaseRenderer, DjangoTemplates, Jinja2
from django.forms.utils import flatatt
from django.template import TemplateDoesNotExist
from django.utils.html import format_html
from django.utils.safestring import SafeString, mark_safe


class FormRenderer(BaseRenderer):
    @cached_property
    def jinja2(self) -> Jinja2:
        return Jinja2()

    @cached_property
    def django(self) -> DjangoTemplates:
        return DjangoTemplates()

    def get_template(self, template_name: str):
        try:
            return self.jinja2.get_template(template_name)
        except TemplateDoesNotExist:
            return self.django.get_template(template_name)


class Select(forms.Select):
    """A ``<select>`` written out in Python, the same markup as Django's template.

    Django builds a context dictionary for every option and renders it through its own
    template, which for the leads list's filters and bulk form (a dozen selects, some
    100 options) cost more than the 25 rows of the table. The options here are joined
    as strings; the attributes the bound field adds (id, required, aria-*) are kept.
    """

    def render(
        self,
        name: str,
        value: Any,
        attrs: dict[str, Any] | None = None,
        renderer: BaseRenderer | None = None,
    ) -> SafeString:
        attrs = self.build_attrs(self.attrs, attrs)
        if self.allow_multiple_selected:
            attrs["multiple"] = True
        chosen = set(self.format_value(value))
        found = False
        lines = [format_html('<select name="{}"{}>', name, flatatt(attrs))]
        for group, label in self.choices:
            grouped = isinstance(label, (list, tuple))
            options = label if grouped else [(group, label)]
            tagged = grouped and bool(group)  # Django draws no tag for an unnamed group
            if tagged:
                lines.append(format_html('  <optgroup label="{}">', group))
            for option, text in options:
                option = "" if option is None else str(option)
                selected = option in chosen and (self.allow_multiple_selected or not found)
                found |= selected
                lines.append(
                    format_html(
                        '  <option value="{}"{}>{}</option>',
                        option,
                        mark_safe(" selected") if selected else "",
                        text,
                    )
                )
            if tagged:
                lines.append("  </optgroup>")
        lines.append("</select>")
        return mark_safe("\n".join(lines))

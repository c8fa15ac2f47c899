"""Form rendering: Django's own form and widget templates through Jinja2.

Django renders every ``<option>`` of a select through its template engine, one include
per option; a leads list with a dozen filters and a bulk form spends about twice as long
in its widgets as Jinja2's compiled versions of the same templates (which Django ships
in ``django/forms/jinja2``). Templates only the Django engine has, such as the admin's
widget wrappers, are still found there. With them, Django's own select costs the leads
list's filter and bulk forms (13 selects, 102 options) about 1.5 ms more than one
written out in Python did, some 6 % of the page's 26 ms (medians), so none is.
"""

from __future__ import annotations

from functools import cached_property

from django.forms.renderers import BaseRenderer, DjangoTemplates, Jinja2
from django.template import TemplateDoesNotExist


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

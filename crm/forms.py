"""Form rendering: Django's own form and widget templates through Jinja2.

Django renders every ``<option>`` of a select through its template engine, one include
per option; a leads list with a dozen filters and a bulk form spends about twice as long
in its widgets as Jinja2's compiled versions of the same templates (which Django ships
in ``django/forms/jinja2``). Templates only the Django engine has, such as the admin's
widget wrappers, are still found there. With them, Django's own select costs the leads
list's filter and bulk forms (13 selects, 102 options) about 1.5 ms more than one
written out in Python did, some 6 % of the page's 26 ms (medians), so none is.

One Jinja2 template is the project's own (``crm/form_templates``, found before
Django's): the select writes Django's default option markup in place of including
``select_option.html`` and its ``attrs.html`` per option, the same HTML for about a
quarter less of the widgets' time on the leads list (4.3 to 3.2 ms for its 22 fields).
"""

from __future__ import annotations

from functools import cached_property
from pathlib import Path

import django.forms
from django.forms.renderers import BaseRenderer, DjangoTemplates, Jinja2
from django.template import TemplateDoesNotExist
from django.template.backends.jinja2 import Jinja2 as Jinja2Engine

FORM_TEMPLATES = Path(__file__).resolve().parent / "form_templates"


class FormJinja2(Jinja2):
    """Django's Jinja2 form renderer, with ``FORM_TEMPLATES`` ahead of Django's own."""

    @cached_property
    def engine(self) -> Jinja2Engine:
        django_templates = Path(django.forms.__file__).resolve().parent / "jinja2"
        return Jinja2Engine(
            {
                "APP_DIRS": True,
                "DIRS": [FORM_TEMPLATES, django_templates],
                "NAME": "djangoforms",
                "OPTIONS": {},
            }
        )


class FormRenderer(BaseRenderer):
    @cached_property
    def jinja2(self) -> Jinja2:
        return FormJinja2()

    @cached_property
    def django(self) -> DjangoTemplates:
        return DjangoTemplates()

    def get_template(self, template_name: str):
        try:
            return self.jinja2.get_template(template_name)
        except TemplateDoesNotExist:
            return self.django.get_template(template_name)

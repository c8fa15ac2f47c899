"""Template tags every page uses."""

from __future__ import annotations

from typing import Any

from django import template
from django.conf import settings
from django.template import engines
from django.templatetags.static import static
from django.utils.html import format_html
from django.utils.safestring import SafeString, mark_safe

register = template.Library()


@register.simple_tag
def htmx_scripts() -> SafeString:
    """htmx, as django-htmx ships it, and with DEBUG on a helper that shows Django's
    error page for a server error (500) of an htmx request.

    Not django-htmx's own ``htmx_script`` tag: with DEBUG on it adds a script that
    replaces the whole page with any 400, 403 or 404 response, while the app answers a
    form error with 400 and the form to show again in place (the ``htmx-config`` of
    ``base.html``). In DEBUG, the way a newcomer first runs the app, every form error
    then wiped the page into the bare form.
    """
    scripts = format_html('<script src="{}" defer></script>', static("django_htmx/htmx-2.min.js"))
    if settings.DEBUG:
        scripts += format_html('<script src="{}" defer></script>', static("js/debug-errors.js"))
    return scripts


@register.simple_tag
def jinja2_include(template_name: str, **values: Any) -> SafeString:
    """The rows ``template_name`` (a ``.jinja`` template, ``crm.jinja2``) writes with
    ``values``, and nothing else of the page's context: ``{% jinja2_include
    "workspace/_lead_list_rows.jinja" rows=rows %}``. Jinja2 escapes what it writes."""
    rows = engines["jinja2"].get_template(template_name)
    return mark_safe(rows.render(values))

"""The Jinja2 engine of the workspace's row templates (``templates/**/*.jinja``).

Pages are Django templates. The rows a busy page repeats (the leads list's 25 rows, the
deal board's 20 cards a column, Next up's queue) are Jinja2 templates, included with
``{% jinja2_include %}`` (``crm.templatetags.hotlist``): Jinja2 compiles a template to
Python, where Django's engine resolves every variable and tag node by node, and those
rows' variables (some 2,000 on a board of 61 cards) cost more CPU than the rest of the
page. The rows get plain values worked out in the view, which Jinja2 escapes as
Django's engine does (the same five characters; the quotes as ``&#34;`` and ``&#39;``).

A missing variable is an error (``StrictUndefined``), where Django's engine writes ""
silently: a name misspelt in a row fails its tests instead of leaving a blank.
"""

from __future__ import annotations

from typing import Any

from jinja2 import Environment, StrictUndefined


def environment(**options: Any) -> Environment:
    return Environment(**{**options, "undefined": StrictUndefined})

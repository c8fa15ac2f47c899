"""The search box in the header: leads, companies and deals found as the person types.

For htmx requests (the header's box, as it changes) the findings partial
(``workspace/_search_results.html``) drops under the box; a plain request (Enter, or a
browser without JavaScript) opens the same findings as a page. The search itself, and
what each person may find, is ``leads.search``; the leads list's ``q`` runs the same
one, so "all N leads" opens the leads found here.
"""

from __future__ import annotations

from urllib.parse import urlencode

from django import forms
from django.contrib.auth.decorators import login_required
from django.http import HttpResponse
from django.shortcuts import render
from django.urls import reverse
from django.utils.cache import patch_vary_headers
from django.views.decorators.http import require_GET

from crm.http import AuthenticatedHttpRequest
from leads.search import SEARCH_MAX_LENGTH, SEARCH_MIN_LENGTH, search_findings, search_text


class SearchForm(forms.Form):
    q = forms.CharField(
        label="Search leads, companies and deals",
        max_length=SEARCH_MAX_LENGTH,
        required=False,
        strip=True,
    )


@login_required
@require_GET
def search(request: AuthenticatedHttpRequest) -> HttpResponse:
    """What the text in ``q`` finds among what the person may see; 400 with the field's
    message for text too long to search. Text shorter than ``SEARCH_MIN_LENGTH`` finds
    nothing yet and says how much more to type."""
    form = SearchForm(request.GET)
    text = search_text(form.cleaned_data["q"]) if form.is_valid() else ""
    findings = None
    if len(text) >= SEARCH_MIN_LENGTH:
        findings = search_findings(user=request.user, text=text)
    context = {
        "form": form,
        "text": text,
        "findings": findings,
        "min_length": SEARCH_MIN_LENGTH,
        "leads_url": f"{reverse('lead-list')}?{urlencode({'q': text})}",
    }
    partial = bool(request.htmx) and not request.htmx.history_restore_request
    template = "workspace/_search_results.html" if partial else "workspace/search.html"
    response = render(request, template, context, status=400 if form.errors else 200)
    patch_vary_headers(response, ["HX-Request"])
    return response

"""Personalized nurture emails: templates over a small context, tracked links, signed tokens.

Templates are Django templates rendered by an engine of their own: no loaders (no
``include`` or ``extends``), no ``load``, no ``debug``, and a context of a few plain
values, never a model, so a template can read nothing but what is listed here. The HTML
body is autoescaped; the subject and text body are not (they are not HTML).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import cache

from django.conf import settings
from django.core import signing
from django.template import Context, Engine, TemplateSyntaxError
from django.urls import reverse

from leads.models import Lead

# Tags that reach beyond the context: other templates, tag libraries, the whole process.
FORBIDDEN_TAGS = ("include", "extends", "load", "debug", "ssi", "csrf_token")
FORBIDDEN_TAG_RE = re.compile(r"{%\s*(" + "|".join(FORBIDDEN_TAGS) + r")\b")
CONTEXT_NAMES = (
    "first_name",
    "last_name",
    "company_name",
    "owner_name",
    "owner_email",
    "unsubscribe_url",
)
SAMPLE_CONTEXT = {
    "first_name": "Ada",
    "last_name": "Lovelace",
    "company_name": "Analytical Engines",
    "owner_name": "Grace Hopper",
    "owner_email": "grace@example.com",
    "unsubscribe_url": "https://example.com/n/u/sample",
}
HREF_RE = re.compile(r"""(href\s*=\s*)(["'])(https?://[^"'\s<>]+)\2""", re.IGNORECASE)
TEXT_URL_RE = re.compile(r"https?://[^\s<>\"')\]]+")

# Signed-token salts: a token made for one purpose is refused by the others.
OPEN_SALT = "nurturing.open"
CLICK_SALT = "nurturing.click"
UNSUBSCRIBE_SALT = "nurturing.unsubscribe"


@cache
def engine(*, autoescape: bool) -> Engine:
    return Engine(dirs=[], app_dirs=False, loaders=[], autoescape=autoescape, libraries={})


def template_errors(source: str) -> list[str]:
    """Why a subject or body cannot be used as a template; empty when it can."""
    match = FORBIDDEN_TAG_RE.search(source or "")
    if match:
        return [f"The {{% {match.group(1)} %}} tag is not available in nurture emails."]
    try:
        template = engine(autoescape=True).from_string(source or "")
        template.render(Context(SAMPLE_CONTEXT))
    except TemplateSyntaxError as exc:
        return [f"Template error: {exc}"]
    except Exception as exc:  # a filter failing on the sample values
        return [f"This template cannot be rendered: {exc}"]
    return []


def lead_context(lead: Lead, *, unsubscribe_url: str) -> dict[str, str]:
    """What a template may read: plain strings about the lead, its company and owner."""
    owner = lead.owner
    return {
        "first_name": lead.first_name,
        "last_name": lead.last_name,
        "company_name": lead.company.name if lead.company_id else "",
        "owner_name": (owner.get_full_name() or owner.username) if owner else "",
        "owner_email": owner.email if owner else "",
        "unsubscribe_url": unsubscribe_url,
    }


def render(source: str, context: dict[str, str], *, html: bool) -> str:
    return engine(autoescape=html).from_string(source).render(Context(context, autoescape=html))


# --- Tokens and tracking URLs -------------------------------------------------------


def make_token(salt: str, **payload: int) -> str:
    return signing.dumps(payload, salt=salt, compress=True)


def read_token(token: str, salt: str) -> dict[str, int] | None:
    """The payload of a token signed for ``salt``; None when forged, altered or foreign."""
    try:
        payload = signing.loads(token, salt=salt)
    except signing.BadSignature:
        return None
    return payload if isinstance(payload, dict) else None


def absolute(path: str) -> str:
    return settings.SITE_URL.rstrip("/") + path


@cache
def _url_pattern(name: str) -> tuple[str, str]:
    """The parts of a tracking URL around its token, reversed once per process."""
    before, _, after = reverse(name, args=["TOKEN"]).partition("TOKEN")
    return before, after


def _tracking_url(name: str, token: str) -> str:
    before, after = _url_pattern(name)
    return absolute(f"{before}{token}{after}")


def open_url(message_id: int) -> str:
    return _tracking_url("nurture-open", make_token(OPEN_SALT, m=message_id))


def click_url(message_id: int, index: int) -> str:
    return _tracking_url("nurture-click", make_token(CLICK_SALT, m=message_id, i=index))


def unsubscribe_url(message_id: int) -> str:
    return _tracking_url("nurture-unsubscribe", make_token(UNSUBSCRIBE_SALT, m=message_id))


# --- The rendered email ---------------------------------------------------------------


@dataclass
class RenderedEmail:
    subject: str
    text: str
    html: str
    links: list[str] = field(default_factory=list)
    unsubscribe_url: str = ""


def render_email(
    *, subject: str, body_text: str, body_html: str, lead: Lead, message_id: int
) -> RenderedEmail:
    """Subject, text and HTML of one message, with its links tracked and an unsubscribe
    link present in each body, and the list of original URLs the click redirect allows."""
    unsubscribe = unsubscribe_url(message_id)
    context = lead_context(lead, unsubscribe_url=unsubscribe)
    links: list[str] = []
    text = render(body_text, context, html=False) if body_text.strip() else ""
    html = render(body_html, context, html=True) if body_html.strip() else ""
    html = HREF_RE.sub(lambda m: _tracked_href(m, links, message_id, unsubscribe), html)
    text = TEXT_URL_RE.sub(lambda m: _tracked(m.group(0), links, message_id, unsubscribe), text)
    if text and unsubscribe not in text:
        text = f"{text.rstrip()}\n\n--\nUnsubscribe: {unsubscribe}\n"
    if html:
        html = _with_footer(html, unsubscribe, open_url(message_id))
    rendered_subject = " ".join(render(subject, context, html=False).split())[:200]
    return RenderedEmail(rendered_subject, text, html, links, unsubscribe)


def _tracked(url: str, links: list[str], message_id: int, unsubscribe: str) -> str:
    if url == unsubscribe or url.startswith(absolute("/n/")):
        return url
    if url not in links:
        links.append(url)
    return click_url(message_id, links.index(url))


def _tracked_href(match: re.Match[str], links: list[str], message_id: int, unsub: str) -> str:
    # The HTML body is escaped: "&amp;" in an href is "&" in the URL the reader follows.
    url = match.group(3).replace("&amp;", "&")
    tracked = _tracked(url, links, message_id, unsub).replace("&", "&amp;")
    return f"{match.group(1)}{match.group(2)}{tracked}{match.group(2)}"


def _with_footer(html: str, unsubscribe: str, pixel: str) -> str:
    footer = ""
    if unsubscribe not in html:
        link = f'<a href="{unsubscribe}">Unsubscribe</a>'
        footer += f'<p style="font-size:12px;color:#666">{link}</p>'
    footer += f'<img src="{pixel}" width="1" height="1" alt="" style="display:block">'
    closing = html.lower().rfind("</body>")
    if closing == -1:
        return html + footer
    return html[:closing] + footer + html[closing:]

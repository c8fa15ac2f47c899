"""Personalized nurture emails: templates over a small context, tracked links, signed tokens.

Templates are Django templates rendered by an engine of their own: no loaders (no
``include`` or ``extends``), no ``load``, no ``debug``, and a context of a few plain
values, never a model, so a template can read nothing but what is listed here. The HTML
body is autoescaped; the subject and text body are not (they are not HTML).

Only links the marketer wrote in the template become tracked links: the ``href`` of
the HTML body and the URLs of the text body, as written in the template's own text
(not produced by a variable). What comes from the lead (names, company) is text: it is
escaped in the HTML body, is never tracked, and has ``://`` and ``www.`` broken by an
invisible space so that mail clients do not turn it into a link either. A link the
marketer wrote with a variable inside (``https://example.com/?c={{ company_name }}``)
is sent as written, untracked, because its address is not fully the marketer's.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cache

from django.conf import settings
from django.core import signing
from django.template import Context, Engine, TemplateSyntaxError
from django.template.base import tag_re
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


# In a value from the lead, what would make a mail client link it: a scheme's "://" or a
# leading "www.". A zero-width space after the colon or the "www" keeps the text as it
# reads and stops the linking.
LINKABLE_RE = re.compile(r"(:)(//)|\b(www)(\.)", re.IGNORECASE)


def as_text(value: str) -> str:
    """A value from the lead, with its URLs and www. addresses made so that mail clients
    do not link them. (A bare domain such as "example.com" some clients still link;
    Hotlist never does, and never tracks it.)"""
    return LINKABLE_RE.sub(lambda m: "\u200b".join(part for part in m.groups() if part), value)


def lead_context(lead: Lead, *, unsubscribe_url: str) -> dict[str, str]:
    """What a template may read: plain strings about the lead, its company and owner.
    The lead's own values are text (``as_text``), never links."""
    owner, company = lead.owner, lead.company
    return {
        "first_name": as_text(lead.first_name),
        "last_name": as_text(lead.last_name),
        "company_name": as_text(company.name) if company is not None else "",
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
    """The tracked form of the message's link ``index``. ``t`` marks a message whose
    links all come from its template; older tokens lack it (``message_click``)."""
    return _tracking_url("nurture-click", make_token(CLICK_SALT, m=message_id, i=index, t=1))


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
    """Subject, text and HTML of one message, with the template's links tracked and an
    unsubscribe link present in each body, and the list of the template's URLs, the
    only ones the click redirect goes to."""
    unsubscribe = unsubscribe_url(message_id)
    context = lead_context(lead, unsubscribe_url=unsubscribe)
    links = TemplateLinks()
    text = html = ""
    if body_html.strip():
        html = render(links.mark(body_html, html=True), context, html=True)
        html = links.track(html, message_id=message_id, html=True)
    if body_text.strip():
        text = render(links.mark(body_text, html=False), context, html=False)
        text = links.track(text, message_id=message_id)
    if text and unsubscribe not in text:
        text = f"{text.rstrip()}\n\n--\nUnsubscribe: {unsubscribe}\n"
    if html:
        html = _with_footer(html, unsubscribe, open_url(message_id))
    rendered_subject = " ".join(render(subject, context, html=False).split())[:200]
    return RenderedEmail(rendered_subject, text, html, links.urls, unsubscribe)


class TemplateLinks:
    """The links written in a message's template, and their tracked replacements.

    ``mark`` swaps each link of the template's own text for a placeholder before the
    template is rendered; ``track`` swaps the placeholders, after rendering, for the
    message's tracked URLs. The placeholders carry a random nonce, so a lead's value
    cannot forge one.
    """

    def __init__(self) -> None:
        self.urls: list[str] = []
        self.nonce = secrets.token_hex(8)

    def mark(self, source: str, *, html: bool) -> str:
        return _in_template_text(source, HREF_RE if html else TEXT_URL_RE, self._placeholder)

    def track(self, rendered: str, *, message_id: int, html: bool = False) -> str:
        def tracked(match: re.Match[str]) -> str:
            url = click_url(message_id, int(match.group(1)))
            return url.replace("&", "&amp;") if html else url

        return re.sub(rf"hotlist-link-{self.nonce}-(\d+)", tracked, rendered, flags=re.IGNORECASE)

    def _placeholder(self, match: re.Match[str]) -> str:
        href = match.re is HREF_RE
        # The HTML body is escaped: "&amp;" in an href is "&" in the URL the reader follows.
        url = match.group(3).replace("&amp;", "&") if href else match.group(0)
        if url.startswith(absolute("/n/")):
            return match.group(0)  # Hotlist's own tracking and unsubscribe links
        if url not in self.urls:
            self.urls.append(url)
        placeholder = f"hotlist-link-{self.nonce}-{self.urls.index(url)}"
        return (
            f"{match.group(1)}{match.group(2)}{placeholder}{match.group(2)}"
            if href
            else placeholder
        )


def _in_template_text(
    source: str, pattern: re.Pattern[str], replace: Callable[[re.Match[str]], str]
) -> str:
    """``source`` with ``pattern`` replaced in the template's own text, never inside a
    tag or variable, nor where a variable continues the match (a personalised URL)."""
    bits = tag_re.split(source)
    for index in range(0, len(bits), 2):  # even bits are text, odd ones tags
        text, continued = bits[index], index + 1 < len(bits)

        def swap(match: re.Match[str], text: str = text, continued: bool = continued) -> str:
            # An href ends at its closing quote; a bare URL may run on into a variable.
            if continued and match.re is not HREF_RE and match.end() == len(text):
                return match.group(0)
            return replace(match)

        bits[index] = pattern.sub(swap, text)
    return "".join(bits)


def template_links(*, body_text: str, body_html: str) -> list[str]:
    """The URLs a template itself links to, as ``render_email`` tracks them."""
    links = TemplateLinks()
    links.mark(body_html, html=True)
    links.mark(body_text, html=False)
    return links.urls


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

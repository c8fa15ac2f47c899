"""The domains that name a company: its website's, and its leads' email addresses' unless
they come from a free-mail provider.

``leads`` knows the common free-mail providers (``FREE_MAIL_DOMAINS``); the marketers'
own free-mail list lives in scoring (``scoring.models.DomainList``), which ``leads``
never imports: scoring registers the one provider of that list in its
``AppConfig.ready()`` with ``free_mail_provider_set``. Without a provider only the
built-in providers count as free mail.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from urllib.parse import urlsplit

# Mailbox providers whose domain says nothing of the lead's company.
FREE_MAIL_DOMAINS = frozenset(
    {
        "aol.com",
        "gmail.com",
        "googlemail.com",
        "gmx.at",
        "gmx.ch",
        "gmx.de",
        "gmx.net",
        "hotmail.com",
        "hotmail.co.uk",
        "hotmail.de",
        "hotmail.fr",
        "icloud.com",
        "live.com",
        "mac.com",
        "me.com",
        "mail.com",
        "mail.ru",
        "msn.com",
        "outlook.com",
        "outlook.de",
        "posteo.de",
        "proton.me",
        "protonmail.com",
        "qq.com",
        "t-online.de",
        "web.de",
        "yahoo.com",
        "yahoo.co.uk",
        "yahoo.de",
        "yahoo.fr",
        "yandex.ru",
        "zoho.com",
    }
)

FreeMailProvider = Callable[[], Iterable[str]]

_provider: FreeMailProvider | None = None


def free_mail_provider_set(provider: FreeMailProvider | None) -> None:
    """Make ``provider`` the source of the listed free-mail domains (``None`` clears it)."""
    global _provider
    _provider = provider


def free_mail_domains() -> frozenset[str]:
    """The built-in free-mail providers and those on the marketers' list, normalized."""
    listed = _provider() if _provider is not None else ()
    return FREE_MAIL_DOMAINS | {web_domain(domain) for domain in listed} - {""}


def web_domain(value: str) -> str:
    """The host a website or domain names, as companies compare by: lower-cased, without
    scheme, port, path, a leading ``www.`` or a trailing dot; "" when it names no host
    with a dot ("localhost", "not a domain")."""
    text = (value or "").strip().lower()
    if not text:
        return ""
    try:
        host = urlsplit(text if "//" in text else f"//{text}").hostname or ""
    except ValueError:  # such as an unclosed "[" of an IPv6 address
        return ""
    host = host.rstrip(".").removeprefix("www.")
    if "." not in host or " " in host:
        return ""
    return host[:253]

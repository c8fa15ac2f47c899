"""A website already using Segment's analytics.js sends to Hotlist by changing only the host.

The library is the official ``@segment/analytics-next`` from the npm registry, installed
by ``scripts/test`` into ``node_modules/``. The shop's page and the library are served
to the browser from a made-up origin; the browser may reach nothing else but Hotlist.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from leads.models import Activity, ActivityType, Lead, TrackingKey
from tests.conftest import IN_CI

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

ROOT = Path(__file__).resolve().parents[2]
LIBRARY = ROOT / "node_modules" / "@segment" / "analytics-next" / "dist" / "umd"
SHOP = "http://shop.localhost"

SHOP_PAGE = """<!doctype html>
<html><head><title>Fleet pricing</title>
<script src="/js/index.js"></script>
<script>
  const analytics = AnalyticsNext.AnalyticsBrowser.load(
    {writeKey: WRITE_KEY, cdnURL: "SHOP", cdnSettings: {integrations: {"Segment.io": {
      apiKey: WRITE_KEY, apiHost: "API_HOST", protocol: "http", DELIVERY}}}},
  );
  window.done = (async () => {
    CALLS
    return "sent";
  })();
</script></head><body><h1>Fleet pricing</h1></body></html>
"""
ONE_BY_ONE_CALLS = """
    await analytics.page("Pricing");
    await analytics.identify("u-1", {email: "ada@fleet.example", firstName: "Ada"});
    await analytics.track("Demo Requested", {plan: "fleet"});
"""
# Five calls sent together to /v1/b; the fourth is dated in the year 2999.
BATCHED_CALLS = """
    analytics.page("Pricing");
    analytics.identify("u-1", {email: "ada@fleet.example", firstName: "Ada"});
    analytics.track("Demo Requested", {plan: "fleet"});
    analytics.track("Quote Requested", {}, {timestamp: new Date("2999-01-01T00:00:00Z")});
    await analytics.track("Webinar Registered", {});
"""
BATCHING = 'deliveryStrategy: {strategy: "batching", config: {size: 5, timeout: 10000}}'


@pytest.fixture
def library() -> Path:
    if not (LIBRARY / "index.js").exists():
        message = f"needs @segment/analytics-next in {LIBRARY} (npm ci installs it)"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)
    return LIBRARY


def visit_shop(page, live_server, library, *, calls: str, delivery: str = "") -> list[str]:
    """Open the shop's pricing page, whose script makes ``calls`` with analytics.js
    pointed at Hotlist; the addresses the browser tried to reach elsewhere."""
    _, secret = TrackingKey.objects.issue(name="Website")
    api_host = live_server.url.removeprefix("http://") + "/v1"
    html = (
        SHOP_PAGE.replace("WRITE_KEY", json.dumps(secret))
        .replace("SHOP", SHOP)
        .replace("API_HOST", api_host)
        .replace("CALLS", calls)
        .replace("DELIVERY", delivery)
    )
    elsewhere: list[str] = []

    def serve_shop(route) -> None:
        path = route.request.url.removeprefix(SHOP).split("?")[0]
        if path == "/pricing":
            route.fulfill(body=html, content_type="text/html")
            return
        name = path.rsplit("/", 1)[-1]  # the library and the chunks it loads
        file = library / name
        if path.startswith(("/js/", "/analytics-next/bundles/")) and file.is_file():
            route.fulfill(path=file, content_type="application/javascript")
        else:
            route.fulfill(status=404)

    def block(route) -> None:
        elsewhere.append(route.request.url)
        route.abort()

    # The shop is a public site to the browser, and Hotlist runs on loopback here.
    page.context.grant_permissions(["local-network-access"], origin=SHOP)
    page.context.route(f"{SHOP}/**", serve_shop)
    page.context.route(
        lambda url: not url.startswith((SHOP, live_server.url)),
        block,
    )

    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.goto(f"{SHOP}/pricing")
    assert page.evaluate("window.done") == "sent", errors
    return elsewhere


def wait_for_activities(count: int) -> None:
    deadline = time.monotonic() + 10
    while Activity.objects.count() < count and time.monotonic() < deadline:
        time.sleep(0.1)


def test_analytics_js_on_a_shop_page_feeds_the_lead(page, live_server, library, default_events):
    # When a visitor reads a shop's pricing page, whose analytics.js is pointed at
    # Hotlist, then identifies and requests a demo
    elsewhere = visit_shop(page, live_server, library, calls=ONE_BY_ONE_CALLS)

    # Then Hotlist has the lead with the page view it saw before identifying and the demo
    # request (both on the page they came from), and the browser talked to nobody else
    wait_for_activities(2)
    lead = Lead.objects.get()
    assert (lead.email, lead.first_name) == ("ada@fleet.example", "Ada")
    stored = set(Activity.objects.filter(lead=lead).values_list("type", "url"))
    assert stored == {
        (ActivityType.PAGE_VIEW, f"{SHOP}/pricing"),
        (ActivityType.DEMO_REQUEST, f"{SHOP}/pricing"),
    }
    assert elsewhere == []


def test_analytics_js_batch_keeps_its_valid_calls_around_a_refused_one(
    page, live_server, library, default_events
):
    # When analytics.js, batching, sends five calls together, one dated in the year 2999
    elsewhere = visit_shop(page, live_server, library, calls=BATCHED_CALLS, delivery=BATCHING)

    # Then the four others are stored: the lead, its page view, demo and webinar
    wait_for_activities(3)
    time.sleep(0.5)  # nothing more arrives
    lead = Lead.objects.get()
    assert lead.email == "ada@fleet.example"
    stored = sorted(Activity.objects.filter(lead=lead).values_list("type", flat=True))
    assert stored == sorted(
        [ActivityType.PAGE_VIEW, ActivityType.DEMO_REQUEST, ActivityType.WEBINAR_REGISTRATION]
    )
    assert elsewhere == []

"""Public form posts to /f/<key>/: leads created or updated by email, one activity each."""

from __future__ import annotations

import logging

import pytest
from django.test import Client, override_settings

from leads.models import Activity, ActivityType, Company, Lead, Source, WebForm
from tests.api_client import error_of
from tests.factories import CompanyFactory, LeadFactory, active_model

ORIGIN = "https://www.acme.example"
THANKS = "https://www.acme.example/thanks"
BROWSER_ACCEPT = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"


@pytest.fixture
def web_form(db) -> WebForm:
    return WebForm.objects.create(
        name="Demo request",
        field_mapping={
            "email": "email",
            "fname": "first_name",
            "lname": "last_name",
            "company": "company",
            "title": "job_title",
        },
        redirect_url=THANKS,
        allowed_origins=ORIGIN,
        default_campaign="Spring launch",
    )


def url_of(form: WebForm) -> str:
    return f"/f/{form.key}/"


def post_json(client: Client, form: WebForm, payload: dict, **headers):
    return client.post(url_of(form), payload, content_type="application/json", **headers)


def nothing_stored() -> bool:
    return not (Lead.objects.exists() or Activity.objects.exists() or Company.objects.exists())


def test_html_form_post_creates_lead_records_activity_and_redirects(web_form):
    # Given a browser on a campaign landing page of another site (no CSRF token)
    browser = Client(enforce_csrf_checks=True)
    page = f"{ORIGIN}/demo?utm_source=google&utm_medium=cpc&utm_campaign=fleet-q4&utm_term=gps"

    # When it posts the HTML form there
    response = browser.post(
        url_of(web_form),
        "email=Ada%40Fleet.example&fname=Ada&lname=Lovelace&company=Fleet+Co&interest=tracking",
        content_type="application/x-www-form-urlencoded",
        HTTP_REFERER=page,
        HTTP_ACCEPT=BROWSER_ACCEPT,
    )

    # Then it is sent on to the thank-you page
    assert response.status_code == 303
    assert response["Location"] == THANKS
    # And the lead is created with the mapped fields and the attribution of the page
    lead = Lead.objects.get()
    assert (lead.email, lead.first_name, lead.last_name) == ("ada@fleet.example", "Ada", "Lovelace")
    assert lead.company.name == "Fleet Co"
    assert (lead.source, lead.campaign) == (Source.PAID_SEARCH, "fleet-q4")
    assert (lead.utm_source, lead.utm_medium, lead.utm_term) == ("google", "cpc", "gps")
    # And one form submission activity keeps the page, the form and what was posted
    activity = Activity.objects.get()
    assert (activity.lead, activity.type, activity.source) == (
        lead,
        ActivityType.FORM_SUBMISSION,
        "form",
    )
    assert activity.url == page
    assert activity.properties["form"] == "Demo request"
    assert activity.properties["utm_campaign"] == "fleet-q4"
    assert activity.properties["fields"] == {
        "email": "Ada@Fleet.example",
        "fname": "Ada",
        "lname": "Lovelace",
        "company": "Fleet Co",
        "interest": "tracking",
    }


def test_json_post_creates_then_updates_the_same_lead_whatever_the_case(client, web_form):
    # Given a lead created by a first JSON post
    first = post_json(
        client, web_form, {"email": "ada@fleet.example", "fname": "Ada", "lname": "L"}
    )
    assert first.status_code == 202, first.content
    assert first.json() == {"accepted": True}
    assert Lead.objects.count() == 1

    # When the same person posts again, spelled differently, with a new name and no surname
    again = post_json(client, web_form, {"email": " ADA@Fleet.Example ", "fname": "Augusta"})

    # Then the same lead is updated, answered exactly like a new one (the key is public:
    # it must not tell which emails are leads): posted fields overwritten, others kept
    assert (again.status_code, again.json()) == (first.status_code, first.json())
    lead = Lead.objects.get()
    assert (lead.first_name, lead.last_name) == ("Augusta", "L")
    assert Activity.objects.filter(lead=lead, type=ActivityType.FORM_SUBMISSION).count() == 2


def test_update_keeps_source_and_campaign_and_fills_only_empty_ones(client, web_form):
    # Given an existing lead from an event, without a campaign
    lead = LeadFactory(email="grace@navy.example", source=Source.EVENT, campaign="")

    # When they post the form from a newsletter link
    response = post_json(
        client,
        web_form,
        {"email": "grace@navy.example", "utm_medium": "email", "utm_campaign": "november"},
    )

    # Then the source stays, and the empty campaign and UTM fields are filled
    assert response.status_code == 202
    lead.refresh_from_db()
    assert (lead.source, lead.campaign, lead.utm_medium) == (Source.EVENT, "november", "email")


def test_new_lead_without_utm_takes_the_forms_defaults(client, web_form):
    response = post_json(client, web_form, {"email": "new@lead.example"})

    assert response.status_code == 202
    lead = Lead.objects.get()
    assert (lead.source, lead.campaign) == (Source.WEBSITE, "Spring launch")


def test_multipart_post_creates_a_lead(client, web_form):
    response = client.post(
        url_of(web_form),
        {"email": "ada@fleet.example", "fname": "Ada", "page_url": f"{ORIGIN}/contact"},
        HTTP_ACCEPT=BROWSER_ACCEPT,
    )

    assert response.status_code == 303
    assert Lead.objects.get().first_name == "Ada"
    assert Activity.objects.get().url == f"{ORIGIN}/contact"


def test_company_is_found_by_name_in_any_case(client, web_form):
    company = CompanyFactory(name="Fleet Co")

    post_json(client, web_form, {"email": "ada@fleet.example", "company": "fleet co"})

    assert Lead.objects.get().company == company
    assert Company.objects.count() == 1


def test_form_without_thank_you_url_shows_its_own_page(client, web_form):
    web_form.redirect_url = ""
    web_form.save()

    response = client.post(url_of(web_form), {"email": "ada@fleet.example"})

    assert response.status_code == 200
    assert "Thank you" in response.content.decode()
    assert Lead.objects.count() == 1


@pytest.mark.parametrize("as_json", [True, False])
def test_unknown_key_answers_404_and_stores_nothing(client, web_form, as_json):
    url = "/f/not-a-key/"
    if as_json:
        response = client.post(url, {"email": "a@b.example"}, content_type="application/json")
        assert error_of(response)["code"] == "not_found"
    else:
        response = client.post(url, {"email": "a@b.example"})
    assert response.status_code == 404
    assert nothing_stored()


def test_inactive_form_answers_404_and_stores_nothing(client, web_form):
    web_form.is_active = False
    web_form.save()

    response = post_json(client, web_form, {"email": "ada@fleet.example"})

    assert response.status_code == 404
    assert error_of(response)["code"] == "not_found"
    assert nothing_stored()


def test_regenerated_key_stops_the_old_one(client, web_form):
    old_url = url_of(web_form)
    web_form.regenerate_key()

    old = client.post(old_url, {"email": "a@b.example"}, content_type="application/json")
    new = post_json(client, web_form, {"email": "a@b.example"})

    assert (old.status_code, new.status_code) == (404, 202)


def test_filled_honeypot_looks_accepted_but_stores_nothing(client, web_form, caplog):
    spam = {"email": "bot@spam.example", "website": "http://cheap.example"}

    with caplog.at_level(logging.WARNING, logger="api.forms"):
        browser = client.post(url_of(web_form), spam, HTTP_ACCEPT=BROWSER_ACCEPT)
        script = post_json(client, web_form, spam)

    assert (browser.status_code, browser["Location"]) == (303, THANKS)
    assert (script.status_code, script.json()) == (202, {"accepted": True})
    assert nothing_stored()
    assert "honeypot" in caplog.text


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        ({"fname": "Ada"}, "Enter an email address."),
        ({"email": "   "}, "Enter an email address."),
        ({"email": "ada-at-fleet.example"}, "Enter a valid email address."),
    ],
)
def test_missing_or_invalid_email_answers_400_naming_the_field(client, web_form, payload, message):
    response = post_json(client, web_form, {**payload, "company": "Fleet Co"})

    assert response.status_code == 400
    error = error_of(response)
    assert error["code"] == "invalid"
    assert error["fields"] == {"email": [message]}
    assert nothing_stored()


def test_invalid_email_from_a_browser_shows_a_short_page(client, web_form):
    response = client.post(url_of(web_form), {"email": "nope"}, HTTP_ACCEPT=BROWSER_ACCEPT)

    assert response.status_code == 400
    assert "Enter a valid email address." in response.content.decode()
    assert nothing_stored()


def test_value_too_long_for_its_field_answers_400(client, web_form):
    response = post_json(client, web_form, {"email": "ada@fleet.example", "fname": "A" * 101})

    assert response.status_code == 400
    assert error_of(response)["fields"] == {"fname": ["Use at most 100 characters."]}
    assert nothing_stored()


def test_body_over_64_kb_answers_413(client, web_form):
    payload = {"email": "ada@fleet.example", "notes": "x" * (64 * 1024)}

    json_post = post_json(client, web_form, payload)
    form_post = client.post(url_of(web_form), payload, HTTP_ACCEPT=BROWSER_ACCEPT)

    assert (json_post.status_code, form_post.status_code) == (413, 413)
    assert error_of(json_post)["code"] == "too_large"
    assert nothing_stored()


@pytest.mark.parametrize("content_type", ["text/plain", "application/xml"])
def test_other_content_type_answers_415(client, web_form, content_type):
    response = client.post(
        url_of(web_form),
        "email=ada@fleet.example",
        content_type=content_type,
        HTTP_ACCEPT="application/json",
    )

    assert response.status_code == 415
    assert error_of(response)["code"] == "unsupported_media_type"
    assert nothing_stored()


@pytest.mark.parametrize("body", ["{not json", '["email"]', '{"email": {"a": 1}}'])
def test_malformed_json_answers_400(client, web_form, body):
    response = client.post(url_of(web_form), body, content_type="application/json")

    assert response.status_code == 400
    assert error_of(response)["code"] in ("parse_error", "invalid")
    assert nothing_stored()


def test_get_is_not_allowed(client, web_form):
    response = client.get(url_of(web_form))

    assert response.status_code == 405
    assert response["Allow"] == "POST"


@override_settings(FORM_RATE_PER_IP=2, FORM_RATE_PER_FORM=100)
def test_too_many_posts_from_one_address_answer_429_with_retry_after(
    client, web_form, private_rate_limits
):
    for n in range(2):
        assert post_json(client, web_form, {"email": f"p{n}@x.example"}).status_code == 202

    third = post_json(client, web_form, {"email": "p3@x.example"})
    elsewhere = post_json(client, web_form, {"email": "p4@x.example"}, REMOTE_ADDR="10.0.0.9")

    assert third.status_code == 429
    assert error_of(third)["code"] == "throttled"
    assert 1 <= int(third["Retry-After"]) <= 60
    assert elsewhere.status_code == 202
    assert not Lead.objects.filter(email="p3@x.example").exists()


@override_settings(FORM_RATE_PER_IP=100, FORM_RATE_PER_FORM=2)
def test_too_many_posts_to_one_form_answer_429(client, web_form, private_rate_limits):
    for n in range(2):
        post_json(client, web_form, {"email": f"p{n}@x.example"}, REMOTE_ADDR=f"10.0.0.{n}")

    third = client.post(
        url_of(web_form), {"email": "p3@x.example"}, REMOTE_ADDR="10.0.0.3", HTTP_ACCEPT="*/*"
    )

    assert third.status_code == 429
    assert int(third["Retry-After"]) >= 1
    assert Lead.objects.count() == 2


def test_cors_preflight_is_answered_for_an_allowed_origin(client, web_form):
    response = client.options(
        url_of(web_form),
        HTTP_ORIGIN=ORIGIN,
        HTTP_ACCESS_CONTROL_REQUEST_METHOD="POST",
        HTTP_ACCESS_CONTROL_REQUEST_HEADERS="content-type",
    )

    assert response.status_code == 204
    assert response["Access-Control-Allow-Origin"] == ORIGIN
    assert "POST" in response["Access-Control-Allow-Methods"]
    assert "Content-Type" in response["Access-Control-Allow-Headers"]


def test_cors_headers_are_withheld_from_other_origins(client, web_form):
    preflight = client.options(
        url_of(web_form),
        HTTP_ORIGIN="https://evil.example",
        HTTP_ACCESS_CONTROL_REQUEST_METHOD="POST",
    )
    post = post_json(
        client, web_form, {"email": "ada@fleet.example"}, HTTP_ORIGIN="https://evil.example"
    )

    assert "Access-Control-Allow-Origin" not in preflight
    assert "Access-Control-Allow-Methods" not in preflight
    assert "Access-Control-Allow-Origin" not in post
    assert "Origin" in post["Vary"]


def test_post_from_an_allowed_origin_can_be_read_by_its_script(client, web_form):
    response = post_json(client, web_form, {"email": "ada@fleet.example"}, HTTP_ORIGIN=ORIGIN)
    invalid = post_json(client, web_form, {"email": "nope"}, HTTP_ORIGIN=ORIGIN)

    assert response["Access-Control-Allow-Origin"] == ORIGIN
    assert invalid["Access-Control-Allow-Origin"] == ORIGIN


def test_submission_is_scored_after_commit(client, web_form, django_capture_on_commit_callbacks):
    # Given an active scoring model that scores form submissions
    from scoring.models import Rule

    model = active_model()
    Rule.objects.create(
        model=model,
        name="Filled a form",
        kind="engagement",
        points=30,
        activity_type="form_submission",
    )

    # When a form is posted, the scoring waits for the commit
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        response = post_json(client, web_form, {"email": "ada@fleet.example"})
        assert Lead.objects.get().score == 0

    # Then the lead ends with the rule's points and its activity is scored
    assert response.status_code == 202
    assert callbacks
    lead = Lead.objects.get()
    assert lead.score == 30
    assert Activity.objects.get().scored_at is not None

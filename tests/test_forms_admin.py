"""Web forms in the admin: the field mapping and origins are checked, keys regenerate."""

from __future__ import annotations

import pytest
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.urls import reverse

from leads.models import WebForm

ADD = reverse("admin:leads_webform_add")
LIST = reverse("admin:leads_webform_changelist")


def form_data(**fields) -> dict:
    data = {
        "name": "Newsletter",
        "is_active": "on",
        "field_mapping": '{"email": "email", "fname": "first_name", "company": "company"}',
        "honeypot_field": "website",
        "redirect_url": "https://www.acme.example/thanks",
        "allowed_origins": "https://www.acme.example/\nhttp://localhost:8000",
        "default_source": "website",
        "default_campaign": "",
    }
    return {**data, **fields}


def test_marketer_adds_a_form_with_a_key(client, marketer):
    client.force_login(marketer)

    response = client.post(ADD, form_data())

    assert response.status_code == 302, response.context["adminform"].form.errors
    form = WebForm.objects.get()
    assert len(form.key) >= 20
    assert form.field_mapping == {"email": "email", "fname": "first_name", "company": "company"}
    assert form.origins == ["https://www.acme.example", "http://localhost:8000"]


@pytest.mark.parametrize(
    ("mapping", "message"),
    [
        ('{"fname": "first_name"}', "Map a posted field to email"),
        ('{"email": "email", "pw": "password"}', "pw: “password” is not a lead field"),
        ('{"email": "email", "score": "score"}', "score: “score” is not a lead field"),
        ('{"email": "email", "e2": "email"}', "email: more than one posted field maps to it."),
        ('{"email": "email", "website": "city"}', "website: this is the honeypot field."),
        ('{"email": "email", "utm_source": "city"}', "utm_source: this name is read as it is"),
        ('["email"]', "Give the mapping as an object"),
    ],
)
def test_admin_refuses_a_bad_field_mapping_with_a_message(client, admin_user, mapping, message):
    client.force_login(admin_user)

    response = client.post(ADD, form_data(field_mapping=mapping))

    assert response.status_code == 200
    errors = response.context["adminform"].form.errors["field_mapping"]
    assert any(message in error for error in errors), errors
    assert message in response.content.decode().replace("&quot;", '"')
    assert not WebForm.objects.exists()


def test_admin_refuses_an_origin_with_a_path(client, admin_user):
    client.force_login(admin_user)

    response = client.post(ADD, form_data(allowed_origins="https://www.acme.example/contact"))

    assert response.status_code == 200
    assert "allowed_origins" in response.context["adminform"].form.errors
    assert not WebForm.objects.exists()


def test_regenerate_key_action_gives_each_selected_form_a_new_key(client, admin_user):
    first = WebForm.objects.create(name="Demo")
    second = WebForm.objects.create(name="Trial")
    keys = {first.key, second.key}
    client.force_login(admin_user)

    response = client.post(
        LIST, {"action": "regenerate_key", ACTION_CHECKBOX_NAME: [first.pk, second.pk]}
    )

    assert response.status_code == 302
    first.refresh_from_db()
    second.refresh_from_db()
    assert not keys & {first.key, second.key}
    assert first.key != second.key


def test_change_page_shows_the_key_and_where_forms_post(client, admin_user):
    form = WebForm.objects.create(name="Demo")
    client.force_login(admin_user)

    response = client.get(reverse("admin:leads_webform_change", args=[form.pk]))

    assert response.status_code == 200
    assert f"/f/{form.key}/" in response.content.decode()


def test_rep_cannot_open_web_forms(client, rep):
    rep.is_staff = True
    rep.save(update_fields=["is_staff"])
    form = WebForm.objects.create(name="Demo")
    client.force_login(rep)

    response = client.post(LIST, {"action": "regenerate_key", ACTION_CHECKBOX_NAME: [form.pk]})

    assert response.status_code == 403
    assert WebForm.objects.get().key == form.key

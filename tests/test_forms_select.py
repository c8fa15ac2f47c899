"""The Python-written select (``crm.forms.Select``) draws what Django's own does: the
same elements, attributes and text (HTML-equal; entity spellings and blanks may differ)."""

from __future__ import annotations

from django import forms
from django.test import RequestFactory
from django.test.html import parse_html
from hypothesis import given, settings
from hypothesis import strategies as st

from crm.forms import FormRenderer, Select
from leads.models import ProductLine
from workspace.filters import LeadListFilter

# Values and labels with the characters that must be escaped, and blanks.
text = st.text(alphabet="ab <>&\"'é", max_size=6)
option = st.tuples(text, text)
group = st.tuples(text, st.lists(option, min_size=1, max_size=3))
choices = st.lists(st.one_of(option, group), max_size=6)


def _django(widget_class: type[forms.Select], choices, value, attrs) -> str:
    widget = widget_class(choices=choices)
    return widget.render("field", value, attrs=attrs, renderer=FormRenderer())


@settings(max_examples=200, deadline=None)
@given(
    choices=choices,
    value=st.one_of(st.none(), text, st.lists(text, max_size=3)),
    required=st.booleans(),
    described=st.booleans(),
)
def test_single_select_markup_is_django_s(choices, value, required, described):
    attrs = {"id": "id_field"}
    if required:
        attrs["required"] = True
    if described:
        attrs["aria-describedby"] = "id_field_helptext"
    expected = _django(forms.Select, choices, value, attrs)
    drawn = Select(choices=choices).render("field", value, attrs=attrs)
    assert parse_html(drawn) == parse_html(expected)


@settings(max_examples=100, deadline=None)
@given(choices=choices, value=st.lists(text, max_size=3))
def test_multiple_select_marks_every_chosen_option(choices, value):
    class Multiple(Select):
        allow_multiple_selected = True

    expected = _django(forms.SelectMultiple, choices, value, {"id": "id_field"})
    drawn = Multiple(choices=choices).render("field", value, attrs={"id": "id_field"})
    assert parse_html(drawn) == parse_html(expected)


def test_only_the_first_of_equal_values_is_selected():
    html = Select(choices=[("a", "One"), ("a", "Two")]).render("field", "a")
    assert html.count(" selected") == 1
    assert '<option value="a" selected>One</option>' in html


def test_model_choices_and_bound_fields_render_as_django_does(manager, rep):
    ProductLine.objects.create(name="Widgets & <Co>", slug="widgets")
    request = RequestFactory().get("/leads/")
    request.user = manager
    data = {"product": "widgets", "band": "hot", "owner": str(rep.pk)}
    form = LeadListFilter(data, request=request).form
    form.is_valid()
    for name in ("product", "band", "owner", "sort"):
        bound = form[name]
        plain = forms.Select(choices=bound.field.choices)
        attrs = bound.build_widget_attrs({"id": bound.auto_id})
        expected = plain.render(name, bound.value(), attrs=attrs, renderer=FormRenderer())
        assert parse_html(str(bound)) == parse_html(expected)
    assert '<option value="widgets" selected>Widgets &amp; &lt;Co&gt;</option>' in str(
        form["product"]
    )

"""Custom lead fields: definitions check themselves; values are checked, coerced, filterable."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.core.exceptions import ValidationError

from leads.models import CustomFieldDefinition, FieldType, Lead
from tests.factories import LeadFactory


@pytest.fixture
def definitions(db) -> dict[str, CustomFieldDefinition]:
    """One definition of each type, saved through ``full_clean`` as the admin would."""
    specs = [
        dict(key="account_code", field_type=FieldType.TEXT, max_length=8, pattern=r"[A-Z]{3}-\d+"),
        dict(key="fleet_size", field_type=FieldType.INTEGER, min_value=1, max_value=10000),
        dict(key="discount", field_type=FieldType.NUMBER, min_value=0, max_value=Decimal("37.5")),
        dict(key="is_partner", field_type=FieldType.BOOLEAN),
        dict(key="renewal_on", field_type=FieldType.DATE),
        dict(key="tier", field_type=FieldType.CHOICE, choices=["gold", "silver", "bronze"]),
    ]
    made = {}
    for spec in specs:
        definition = CustomFieldDefinition(label=spec["key"].replace("_", " ").title(), **spec)
        definition.full_clean()
        definition.save()
        made[definition.key] = definition
    return made


def cleaned_lead(custom_fields) -> Lead:
    lead = LeadFactory.build(company=None, custom_fields=custom_fields)
    lead.full_clean()
    lead.save()
    lead.refresh_from_db()
    return lead


def custom_field_errors(custom_fields) -> list[str]:
    lead = LeadFactory.build(company=None, custom_fields=custom_fields)
    with pytest.raises(ValidationError) as caught:
        lead.full_clean()
    assert set(caught.value.message_dict) == {"custom_fields"}
    return caught.value.message_dict["custom_fields"]


@pytest.mark.parametrize(
    ("key", "submitted", "stored"),
    [
        ("account_code", "ABC-12", "ABC-12"),
        ("fleet_size", "120", 120),
        ("fleet_size", " 7 ", 7),
        ("fleet_size", 120.0, 120),
        ("fleet_size", 10000, 10000),
        ("discount", "12.5", 12.5),
        ("discount", 0, 0.0),
        ("discount", "37.5", 37.5),
        ("is_partner", True, True),
        ("is_partner", "yes", True),
        ("is_partner", "0", False),
        ("is_partner", "Off", False),
        ("renewal_on", "2025-03-01", "2025-03-01"),
        ("tier", "gold", "gold"),
    ],
)
def test_valid_value_is_coerced_and_stored(definitions, key, submitted, stored):
    lead = cleaned_lead({key: submitted})

    assert lead.custom_fields == {key: stored}
    assert type(lead.custom_fields[key]) is type(stored)


@pytest.mark.parametrize(
    ("key", "submitted", "message"),
    [
        ("account_code", "abc-12", "Does not have the expected format."),
        ("account_code", "ABCD-123", "Does not have the expected format."),
        ("account_code", "ABC-123456", "Use at most 8 characters."),
        ("account_code", ["ABC-1"], "Enter text."),
        ("fleet_size", "many", "Enter a whole number."),
        ("fleet_size", 2.5, "Enter a whole number."),
        ("fleet_size", True, "Enter a whole number."),
        ("fleet_size", 0, "Must be at least 1."),
        ("fleet_size", 10001, "Must be at most 10000."),
        ("discount", "a lot", "Enter a number."),
        ("discount", "NaN", "Enter a number."),
        ("discount", "Infinity", "Enter a number."),
        ("discount", -1, "Must be at least 0."),
        ("discount", "37.51", "Must be at most 37.5."),
        ("is_partner", "maybe", "Enter yes or no."),
        ("renewal_on", "31/12/2025", "Enter a date as YYYY-MM-DD."),
        ("renewal_on", "2025-02-30", "Enter a date as YYYY-MM-DD."),
        ("tier", "platinum", "Choose one of: gold, silver, bronze."),
    ],
)
def test_invalid_value_is_refused_naming_the_key(definitions, key, submitted, message):
    assert custom_field_errors({key: submitted}) == [f"{key}: {message}"]
    assert not Lead.objects.exists()


def test_every_bad_key_is_named_in_one_error(definitions):
    errors = custom_field_errors({"fleet_size": "many", "tier": "tin", "colour": "red"})

    assert sorted(errors) == [
        "colour: Unknown custom field.",
        "fleet_size: Enter a whole number.",
        "tier: Choose one of: gold, silver, bronze.",
    ]


def test_unknown_key_is_refused(definitions):
    assert custom_field_errors({"favourite_colour": "red"}) == [
        "favourite_colour: Unknown custom field."
    ]


@pytest.mark.parametrize("custom_fields", [[], "fleet_size=3", 42])
def test_custom_fields_that_are_not_an_object_are_refused(definitions, custom_fields):
    assert custom_field_errors(custom_fields) == ["Give custom fields as an object."]


@pytest.mark.parametrize("custom_fields", [{}, {"fleet_size": ""}, {"fleet_size": None}])
def test_required_field_must_have_a_value(definitions, custom_fields):
    definitions["fleet_size"].required = True
    definitions["fleet_size"].save(update_fields=["required"])

    assert custom_field_errors(custom_fields) == ["fleet_size: This field is required."]


def test_empty_optional_values_are_dropped(definitions):
    lead = cleaned_lead({"tier": "", "fleet_size": None, "is_partner": False})

    assert lead.custom_fields == {"is_partner": False}


@pytest.fixture
def fleet(definitions) -> dict[str, Lead]:
    rows = {
        "small": {"fleet_size": "10", "is_partner": "no", "renewal_on": "2025-01-31"},
        "medium": {"fleet_size": "50", "is_partner": "yes", "renewal_on": "2025-06-30"},
        "large": {"fleet_size": "200", "is_partner": "yes", "tier": "gold"},
    }
    return {name: cleaned_lead(values) for name, values in rows.items()}


@pytest.mark.parametrize(
    ("lookup", "expected"),
    [
        ({"custom_fields__fleet_size__gte": 50}, {"medium", "large"}),
        ({"custom_fields__fleet_size__lt": 50}, {"small"}),
        ({"custom_fields__fleet_size": 200}, {"large"}),
        ({"custom_fields__is_partner": True}, {"medium", "large"}),
        ({"custom_fields__renewal_on__gte": "2025-03-01"}, {"medium"}),
        ({"custom_fields__tier": "gold"}, {"large"}),
        ({"custom_fields__has_key": "tier"}, {"large"}),
        ({"custom_fields__tier__isnull": True}, {"small", "medium"}),
    ],
)
def test_values_filter_with_json_lookups(fleet, lookup, expected):
    by_pk = {lead.pk: name for name, lead in fleet.items()}

    found = {by_pk[pk] for pk in Lead.objects.filter(**lookup).values_list("pk", flat=True)}

    assert found == expected


@pytest.mark.parametrize(
    ("fields", "bad_field"),
    [
        ({"field_type": FieldType.TEXT, "pattern": "[A-"}, "pattern"),
        ({"field_type": FieldType.TEXT, "pattern": "(?P<x"}, "pattern"),
        ({"field_type": FieldType.CHOICE, "choices": []}, "choices"),
        ({"field_type": FieldType.CHOICE, "choices": ["gold", 2]}, "choices"),
        ({"field_type": FieldType.CHOICE, "choices": "gold,silver"}, "choices"),
        ({"field_type": FieldType.INTEGER, "min_value": 10, "max_value": 1}, "max_value"),
        ({"field_type": "colour"}, "field_type"),
    ],
)
def test_bad_definition_is_refused_by_full_clean(db, fields, bad_field):
    definition = CustomFieldDefinition(key="code", label="Code", **fields)

    with pytest.raises(ValidationError) as caught:
        definition.full_clean()

    assert bad_field in caught.value.message_dict


@pytest.mark.parametrize("key", ["Fleet", "2fleet", "fleet-size", "fleet size"])
def test_definition_key_must_be_lower_case_snake(db, key):
    definition = CustomFieldDefinition(key=key, label="Fleet")

    with pytest.raises(ValidationError) as caught:
        definition.full_clean()

    assert "key" in caught.value.message_dict


def test_definition_with_emptied_choices_box_is_saved_as_empty_list(db):
    definition = CustomFieldDefinition(key="code", label="Code", choices=None)

    definition.full_clean()
    definition.save()

    definition.refresh_from_db()
    assert definition.choices == []

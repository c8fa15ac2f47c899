"""Fields and helpers that the record serializers share."""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet
from rest_framework import serializers
from rest_framework.exceptions import NotAuthenticated
from rest_framework.request import Request

from crm.models import User
from leads.merging import lead_alias_target
from leads.models import Lead

LEAD_NOT_VISIBLE = "There is no lead {pk_value} that you can see."


def caller(request: Request) -> User:
    """The signed-in user a request of a view behind ``IsAuthenticated`` comes from."""
    user = request.user
    if not isinstance(user, User):
        raise NotAuthenticated()
    return user


def request_user(serializer: serializers.BaseSerializer) -> User:
    """The user the serializer answers (from its request)."""
    return caller(serializer.context["request"])


MAX_ID = 2**63 - 1


def is_id(value: Any) -> bool:
    """A whole number the database can hold as an id (larger ones overflow its driver)."""
    try:
        number = int(str(value))
    except ValueError:
        return False
    return 1 <= number <= MAX_ID


def merged_lead(user: User, pk: Any) -> Lead | None:
    """The lead in ``user``'s view that the id of a merged lead names now, if any: a
    client that kept the old id still reaches the person."""
    survivor = lead_alias_target(int(pk)) if is_id(pk) else None
    if survivor is None:
        return None
    return Lead.objects.visible_to(user).filter(pk=survivor).first()


class VisibleLeadField(serializers.PrimaryKeyRelatedField):
    """A lead id, accepted only when the caller can see that lead; the id of a lead
    merged into one they can see names that one."""

    default_error_messages = {"does_not_exist": LEAD_NOT_VISIBLE}

    def get_queryset(self) -> QuerySet[Lead]:
        return Lead.objects.visible_to(self.context["request"].user)

    def to_internal_value(self, data: Any) -> Lead:
        if not isinstance(data, bool) and isinstance(data, int | str) and not is_id(data):
            self.fail("does_not_exist", pk_value=data)
        try:
            return super().to_internal_value(data)
        except serializers.ValidationError:
            lead = merged_lead(self.context["request"].user, data)
            if lead is None:
                raise
            return lead

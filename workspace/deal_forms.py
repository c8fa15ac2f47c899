"""Forms of the deals on the lead page and the deal board: a deal's fields, the reason
it is lost, a move to another stage, and the board's filters.

Forms only validate; the views hand the cleaned data to ``leads.deals``, which may
still refuse (a lead that cannot become a customer), its message landing on the form.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from django import forms
from django.db.models import Q

from crm.models import User
from leads.deals import lost_reasons_offered
from leads.filters import OWNER_ME, OWNER_UNASSIGNED, owner_choices_for
from leads.models import DEFAULT_CURRENCY, Deal, DealStage, Lead, ProductLine
from leads.permissions import OWNER_REFUSED, lead_owners, may_own, teammates_of

CURRENCY_PATTERN = r"[A-Za-z]{3}"


class DateInput(forms.DateInput):
    input_type = "date"

    def __init__(self, attrs: dict[str, Any] | None = None) -> None:
        super().__init__(attrs, format="%Y-%m-%d")


@dataclass(frozen=True)
class DealOptions:
    """What a deal form offers, loaded once for every form of a page: the stages, the
    product lines and the people the user may make owners (``lead_owners``)."""

    stages: list[DealStage]
    products: list[ProductLine]
    owners: list[User]

    @classmethod
    def load(cls, user: User) -> DealOptions:
        return cls(
            stages=list(DealStage.objects.all()),
            products=list(ProductLine.objects.all()),
            owners=list(lead_owners(user)),
        )


class DealForm(forms.Form):
    """A deal's fields, new or changed. The owner is someone the person may give leads
    to, or the owner the deal has (``may_own``); a new deal defaults to the lead's."""

    name = forms.CharField(
        label="Deal", max_length=200, error_messages={"required": "Name the deal."}
    )
    amount = forms.DecimalField(
        label="Amount", required=False, min_value=0, max_digits=14, decimal_places=2
    )
    currency = forms.CharField(
        label="Currency",
        min_length=3,
        max_length=3,
        initial=DEFAULT_CURRENCY,
        widget=forms.TextInput(attrs={"pattern": CURRENCY_PATTERN, "size": 3}),
        help_text="Three letters, e.g. EUR.",
    )
    stage = forms.TypedChoiceField(label="Stage", coerce=int)
    expected_close = forms.DateField(label="Expected close", required=False, widget=DateInput())
    probability = forms.IntegerField(
        label="Probability (%)",
        required=False,
        min_value=0,
        max_value=100,
        help_text="Empty: the stage's.",
    )
    product_line = forms.TypedChoiceField(
        label="Product line", coerce=int, required=False, empty_value=None
    )
    owner = forms.TypedChoiceField(label="Owner", coerce=int, required=False, empty_value=None)

    def __init__(
        self,
        *args: Any,
        lead: Lead,
        user: User,
        options: DealOptions,
        deal: Deal | None = None,
        **kwargs: Any,
    ) -> None:
        if deal is not None:
            kwargs.setdefault("initial", _initial(deal))
        else:
            first = options.stages[0].pk if options.stages else None
            kwargs.setdefault("initial", {"owner": lead.owner_id, "stage": first})
        super().__init__(*args, **kwargs)
        self.user = user
        self.current = deal.owner if deal is not None else lead.owner
        owners = list(options.owners)
        if self.current is not None and self.current not in owners:
            owners.append(self.current)
        self.stages = {stage.pk: stage for stage in options.stages}
        self.products = {product.pk: product for product in options.products}
        self.owners = {person.pk: person for person in owners}
        self._offer("stage", [(pk, str(stage)) for pk, stage in self.stages.items()])
        self._offer(
            "product_line", [("", "None"), *((pk, str(p)) for pk, p in self.products.items())]
        )
        self._offer("owner", [("", "Nobody"), *((pk, str(p)) for pk, p in self.owners.items())])

    def _offer(self, name: str, choices: list[tuple[Any, str]]) -> None:
        field = self.fields[name]
        assert isinstance(field, forms.ChoiceField)
        field.choices = choices

    def clean_name(self) -> str:
        name = self.cleaned_data["name"].strip()
        if not name:
            raise forms.ValidationError("Name the deal.")
        return name

    def clean_amount(self) -> Decimal:
        return self.cleaned_data["amount"] or Decimal(0)

    def clean_currency(self) -> str:
        currency = self.cleaned_data["currency"].strip().upper()
        if not currency.isascii() or not currency.isalpha() or len(currency) != 3:
            raise forms.ValidationError("Use a three-letter currency code, e.g. EUR.")
        return currency

    def clean_stage(self) -> DealStage:
        return self.stages[self.cleaned_data["stage"]]

    def clean_product_line(self) -> ProductLine | None:
        chosen = self.cleaned_data["product_line"]
        return None if chosen is None else self.products[chosen]

    def clean_owner(self) -> User | None:
        chosen = self.cleaned_data["owner"]
        owner = None if chosen is None else self.owners[chosen]
        if not may_own(user=self.user, owner=owner, current=self.current):
            raise forms.ValidationError(OWNER_REFUSED)
        return owner

    def changes(self) -> dict[str, Any]:
        """The cleaned fields whose value differs from the deal's."""
        return {name: self.cleaned_data[name] for name in self.changed_data}


def _initial(deal: Deal) -> dict[str, Any]:
    return {
        "name": deal.name,
        "amount": deal.amount,
        "currency": deal.currency,
        "stage": deal.stage_id,
        "expected_close": deal.expected_close,
        "probability": deal.probability,
        "product_line": deal.product_line_id,
        "owner": deal.owner_id,
    }


def lost_reason_names() -> list[str]:
    return list(lost_reasons_offered().values_list("name", flat=True))


class LoseDealForm(forms.Form):
    """Why the deal is lost: one of the pick-list's reasons (``names``, loaded once per
    page by ``lost_reason_names``), or, with none offered, any."""

    reason = forms.ChoiceField(label="Why was it lost?")

    def __init__(self, *args: Any, names: list[str], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if names:
            reason = self.fields["reason"]
            assert isinstance(reason, forms.ChoiceField)
            reason.choices = [("", "Choose a reason"), *((name, name) for name in names)]
        else:
            self.fields["reason"] = forms.CharField(label="Why was it lost?", max_length=200)
        self.fields["reason"].error_messages["required"] = "Say why the deal is lost."


class DealMoveForm(forms.Form):
    """A card of the deal board moved to another stage (dragged, or its "Move to…")."""

    deal = forms.IntegerField(min_value=1, max_value=2**63 - 1)
    stage = forms.ModelChoiceField(queryset=DealStage.objects.all())


class DealBoardFilterForm(forms.Form):
    """Whose deals (``me``, ``unassigned`` or a person the user sees the leads of) and
    which product line; within the deals the user sees."""

    owner = forms.ChoiceField(label="Owner", required=False)
    product = forms.ModelChoiceField(
        label="Product line",
        queryset=ProductLine.objects.all(),
        to_field_name="slug",
        required=False,
        empty_label="Any",
    )

    def __init__(self, *args: Any, user: User, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        owner = self.fields["owner"]
        assert isinstance(owner, forms.ChoiceField)
        owner.choices = [("", "Anyone I can see"), *owner_choices_for(user, people=_people(user))]
        self.user = user

    def condition(self) -> Q:
        """The valid filters (an invalid one is left out) as a condition on the columns a
        deal and its board totals share: its owner and its product line."""
        self.is_valid()
        data = getattr(self, "cleaned_data", {})
        condition = Q()
        owner = data.get("owner")
        if owner == OWNER_ME:
            condition &= Q(owner=self.user)
        elif owner == OWNER_UNASSIGNED:
            condition &= Q(owner=None)
        elif owner:
            condition &= Q(owner_id=int(owner))
        if data.get("product"):
            condition &= Q(product_line=data["product"])
        return condition


def _people(user: User) -> list[User]:
    return list(teammates_of(user))

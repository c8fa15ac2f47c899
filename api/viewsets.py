"""The shape shared by the API's record endpoints."""

from rest_framework import mixins, viewsets

from crm.models import User

from .fields import caller
from .idempotency import IdempotentCreateMixin


class RecordViewSet(
    IdempotentCreateMixin,
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.CreateModelMixin,
    mixins.UpdateModelMixin,
    viewsets.GenericViewSet,
):
    """List, show, create (replayable with ``Idempotency-Key``) and change; no delete:
    CRM records are kept, and their history matters."""

    @property
    def caller(self) -> User:
        """The signed-in user the request acts for (every endpoint requires one)."""
        return caller(self.request)

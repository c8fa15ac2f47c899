"""The shape shared by the API's record endpoints."""

from rest_framework import mixins, viewsets
from rest_framework.exceptions import NotAuthenticated

from crm.models import User

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
        user = self.request.user
        if not isinstance(user, User):
            raise NotAuthenticated()
        return user

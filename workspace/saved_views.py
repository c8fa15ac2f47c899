"""Saved views of the leads list: who sees, saves, shares, renames and deletes them.

- Everyone with a role saves personal views, seen by themselves only.
- Managers and admins also share views (``may_share_views``), the team-wide rule the
  app uses for giving leads to others (``leads.permissions.assigns_leads``). A shared
  view is seen by the people of its owner's team: the owner's team members, the
  manager of that team, and the members of the teams the owner manages; a view shared
  by someone in no team and managing none (an admin, say) by everyone. Admins see
  every shared view.
- A view is renamed by its owner; deleted by its owner, and a shared one also by any
  manager or admin who sees it.
- Opening a view runs its filters for the person who opens it: the leads shown are
  always within what that person may see. Nothing about leads is stored in a view.

The admin asks the same functions.
"""

from __future__ import annotations

from collections.abc import Sequence

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import IntegrityError, transaction
from django.db.models import Q, QuerySet
from django.http import QueryDict

from crm.models import Role, User

from .columns import COLUMNS, COLUMNS_PARAM
from .models import SavedView

NAME_TAKEN = "You already have a view of this name."
NAME_MISSING = "Give the view a name."
QUERY_TOO_LONG = "This list's filters are too long to save as a view."
SHARE_REFUSED = "Only managers and admins share views with their team."
VIEW_NOT_YOURS = "Only the view's owner can change it."
DELETE_REFUSED = "Only the view's owner, or a manager or admin for a shared view, can delete it."
# Query parameters a view does not keep: the page, the columns (kept apart), the view.
NOT_STORED = ("cursor", COLUMNS_PARAM, "view", "csrfmiddlewaretoken")
VIEW_PARAM = "view"


def may_share_views(user: User) -> bool:
    """Whether ``user`` shares views with their team: managers and admins."""
    return user.role in (Role.ADMIN, Role.MANAGER)


def saved_views_for(user: User) -> QuerySet[SavedView]:
    """The views ``user`` sees: their own and those shared with them (module docstring)."""
    views = SavedView.objects.select_related("owner")
    if user.role is None:
        return views.none()
    if user.role == Role.ADMIN:
        return views.filter(Q(owner=user) | Q(shared=True))
    sharers = Q(owner__team__isnull=True, owner__managed_teams__isnull=True)
    sharers |= Q(owner__team__manager=user)
    if user.team_id is not None:
        sharers |= Q(owner__team_id=user.team_id) | Q(owner__managed_teams__id=user.team_id)
    visible = Q(owner=user) | (Q(shared=True) & sharers)
    return views.filter(pk__in=SavedView.objects.filter(visible).values("pk"))


def view_query(params: QueryDict) -> str:
    """What a view keeps of the list's query string: its filters and sort."""
    query = params.copy()
    for name in NOT_STORED:
        query.pop(name, None)
    return query.urlencode()


def view_columns(params: QueryDict) -> list[str] | None:
    """The chosen columns a view keeps: None when the list shows the defaults."""
    if COLUMNS_PARAM not in params:
        return None
    asked = set(params.getlist(COLUMNS_PARAM))
    return [key for key in COLUMNS if key in asked]


def view_url_query(view: SavedView) -> QueryDict:
    """The list's query string that opens ``view``: its filters, columns and id."""
    query = QueryDict(view.query, mutable=True)
    if view.columns is not None:
        query.setlist(COLUMNS_PARAM, list(view.columns) or [""])
    query[VIEW_PARAM] = str(view.pk)
    return query


def saved_view_create(
    *, owner: User, name: str, query: str, columns: Sequence[str] | None, shared: bool = False
) -> SavedView:
    """Save the list as ``name``. Raises ``ValidationError`` keyed by field: a name
    missing or taken, or sharing by someone who may not share."""
    name = name.strip()
    if not name:
        raise ValidationError({"name": NAME_MISSING})
    if shared and not may_share_views(owner):
        raise ValidationError({"shared": SHARE_REFUSED})
    if len(query) > SavedView._meta.get_field("query").max_length:  # type: ignore[operator]
        raise ValidationError({"name": QUERY_TOO_LONG})
    view = SavedView(owner=owner, name=name, shared=shared, query=query)
    view.columns = None if columns is None else [key for key in COLUMNS if key in columns]
    try:
        with transaction.atomic():
            view.save()
    except IntegrityError:
        # The unique constraint decides, so two saves at once cannot both take the name.
        raise ValidationError({"name": NAME_TAKEN}) from None
    return view


def saved_view_rename(*, view: SavedView, name: str, by: User) -> SavedView:
    """Rename the owner's view; ``ValidationError`` on the name as when saving."""
    if view.owner_id != by.pk:
        raise PermissionDenied(VIEW_NOT_YOURS)
    name = name.strip()
    if not name:
        raise ValidationError({"name": NAME_MISSING})
    view.name = name
    try:
        with transaction.atomic():
            view.save(update_fields=["name", "updated_at"])
    except IntegrityError:
        raise ValidationError({"name": NAME_TAKEN}) from None
    return view


def may_delete_view(*, view: SavedView, user: User) -> bool:
    """The owner deletes a view; managers and admins also delete a shared one they see
    (``view`` comes from ``saved_views_for(user)``)."""
    return view.owner_id == user.pk or (view.shared and may_share_views(user))


def saved_view_delete(*, view: SavedView, by: User) -> None:
    if not may_delete_view(view=view, user=by):
        raise PermissionDenied(DELETE_REFUSED)
    view.delete()

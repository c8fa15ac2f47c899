"""Users, their roles and teams: who may see and change which leads."""

from __future__ import annotations

from django.contrib.auth.models import AbstractUser
from django.db import models
from django.utils.functional import cached_property


class Role(models.TextChoices):
    """The four kinds of people who use Hotlist; each is a Django group of the same label."""

    ADMIN = "admin", "Admin"
    MARKETER = "marketer", "Marketer"
    MANAGER = "manager", "Sales manager"
    REP = "rep", "Sales rep"


class Team(models.Model):
    name = models.CharField(max_length=100, unique=True)
    manager = models.ForeignKey(
        "crm.User",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="managed_teams",
    )

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class User(AbstractUser):
    """A person who signs in; reps carry the territory and product lines used to assign leads."""

    team = models.ForeignKey(
        Team, null=True, blank=True, on_delete=models.SET_NULL, related_name="members"
    )
    territory_countries = models.JSONField(
        default=list, blank=True, help_text='ISO country codes this rep covers, e.g. ["DE", "AT"].'
    )
    territory_regions = models.JSONField(
        default=list, blank=True, help_text='Regions this rep covers, e.g. ["EMEA"].'
    )
    product_lines = models.ManyToManyField("leads.ProductLine", blank=True, related_name="reps")

    def __str__(self) -> str:
        return self.get_full_name() or self.username

    @cached_property
    def role(self) -> Role | None:
        """The strongest role the user holds, or None for an outsider."""
        if self.is_superuser:
            return Role.ADMIN
        names = set(self.groups.values_list("name", flat=True))
        for role in (Role.ADMIN, Role.MARKETER, Role.MANAGER, Role.REP):
            if role.label in names:
                return role
        return None

    @property
    def sees_all_leads(self) -> bool:
        return self.role in (Role.ADMIN, Role.MARKETER)


class WorkerHeartbeat(models.Model):
    """One row per worker host, touched by the periodic heartbeat task."""

    hostname = models.CharField(max_length=255, unique=True)
    beat_at = models.DateTimeField()

    def __str__(self) -> str:
        return f"{self.hostname} at {self.beat_at:%Y-%m-%d %H:%M:%S}"

from django.contrib import admin
from django.contrib.auth.admin import UserAdmin as DjangoUserAdmin

from .models import Team, User, WorkerHeartbeat


@admin.register(User)
class UserAdmin(DjangoUserAdmin):
    list_display = ("username", "email", "first_name", "last_name", "team", "is_staff")
    list_filter = (*DjangoUserAdmin.list_filter, "team")
    list_select_related = ("team",)
    fieldsets = (
        *DjangoUserAdmin.fieldsets,
        (
            "Sales",
            {"fields": ("team", "territory_countries", "territory_regions", "product_lines")},
        ),
    )
    filter_horizontal = (*DjangoUserAdmin.filter_horizontal, "product_lines")


class MemberInline(admin.TabularInline):
    model = User
    fk_name = "team"
    fields = ("username", "first_name", "last_name", "email")
    readonly_fields = fields
    extra = 0
    can_delete = False
    show_change_link = True

    def has_add_permission(self, request, obj=None) -> bool:
        return False


@admin.register(Team)
class TeamAdmin(admin.ModelAdmin):
    list_display = ("name", "manager")
    list_select_related = ("manager",)
    search_fields = ("name",)
    autocomplete_fields = ("manager",)
    inlines = [MemberInline]


@admin.register(WorkerHeartbeat)
class WorkerHeartbeatAdmin(admin.ModelAdmin):
    list_display = ("hostname", "beat_at")

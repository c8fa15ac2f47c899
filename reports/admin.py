from django.contrib import admin

from .models import Campaign, DigestPreference


@admin.register(Campaign)
class CampaignAdmin(admin.ModelAdmin):
    list_display = ["name", "spend", "currency", "updated_at"]
    search_fields = ["name"]
    fields = ["name", "spend", "currency", "notes"]


@admin.register(DigestPreference)
class DigestPreferenceAdmin(admin.ModelAdmin):
    list_display = ["user", "weekly_digest", "last_sent_for", "updated_at"]
    list_filter = ["weekly_digest"]
    list_select_related = ["user"]
    search_fields = ["user__username", "user__email"]
    raw_id_fields = ["user"]
    readonly_fields = ["last_sent_for"]

from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.http import HttpRequest, HttpResponseRedirect
from django.templatetags.static import static
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from .health import healthz

# Server errors on the API, form and tracking paths answer JSON in their documented shape.
handler500 = "api.errors.server_error"

admin.site.site_header = "Hotlist administration"
admin.site.site_title = "Hotlist admin"
admin.site.index_title = "Leads, scoring rules and nurture sequences"


def favicon(request: HttpRequest) -> HttpResponseRedirect:
    """The icon, at its static address (hashed once collected), found at request time."""
    return HttpResponseRedirect(static("favicon.svg"))


urlpatterns = [
    path("healthz", healthz, name="healthz"),
    # Browsers ask for /favicon.ico on pages that name no icon (the admin's).
    path("favicon.ico", favicon, name="favicon"),
    path("accounts/login/", auth_views.LoginView.as_view(), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("admin/", admin.site.urls),
    path("api/v1/", include("api.urls")),
    path("api/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="api-schema"), name="api-docs"),
    path("f/", include("api.form_urls")),
    path("v1/", include("api.tracking_urls")),
    path("n/", include("nurturing.urls")),
    path("reports/", include("reports.urls")),
    path("studio/", include("studio.urls")),
    path("", include("workspace.urls")),
]

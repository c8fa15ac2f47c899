"""The public form endpoint, mounted at ``/f/`` (no login, no CSRF; see ``submissions``)."""

from django.urls import path

from .submissions import form_submit

urlpatterns = [path("<str:key>/", form_submit, name="form-submit")]

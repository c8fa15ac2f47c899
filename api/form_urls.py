"""The public form endpoint, mounted at ``/f/`` (no login, no CSRF; see ``forms``)."""

from django.urls import path

from .forms import form_submit

urlpatterns = [path("<str:key>/", form_submit, name="form-submit")]

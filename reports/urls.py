from django.urls import path

from . import views

urlpatterns = [
    path("", views.report_index, name="reports"),
    path("digest/", views.digest_settings, name="reports-digest"),
    path("<slug:slug>/", views.report_page, name="reports-page"),
]

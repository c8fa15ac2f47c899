"""Public URLs of nurture emails, mounted under ``/n/``."""

from django.urls import path

from . import views

urlpatterns = [
    path("o/<str:token>.gif", views.open_pixel, name="nurture-open"),
    path("c/<str:token>", views.click, name="nurture-click"),
    path("u/<str:token>", views.unsubscribe, name="nurture-unsubscribe"),
    path("bounce/", views.bounce_webhook, name="nurture-bounce"),
]

"""Product lines: what leads are interested in and reps specialise in."""

from __future__ import annotations

from django.conf import settings
from django.db import models


class ProductLine(models.Model):
    """A product or service line leads can be interested in and reps can specialise in."""

    name = models.CharField(max_length=100, unique=True)
    slug = models.SlugField(max_length=100, unique=True)
    # The reps who sell this line (``user.product_lines`` from the other side). Declared
    # here so that ``crm`` knows nothing of leads; the table keeps the name it had when
    # the relation was declared on the user.
    reps = models.ManyToManyField(
        settings.AUTH_USER_MODEL,
        blank=True,
        related_name="product_lines",
        db_table="crm_user_product_lines",
    )

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

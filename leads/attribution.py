"""Where a lead came from: the UTM parameters that web forms and tracking calls read,
and the lead sources their ``utm_medium`` names."""

from __future__ import annotations

from .models import Source

UTM_FIELDS = ("utm_source", "utm_medium", "utm_campaign", "utm_term", "utm_content")

# utm_medium values that name a lead source; any other medium leaves the form's default.
SOURCE_BY_UTM_MEDIUM = {
    "cpc": Source.PAID_SEARCH,
    "ppc": Source.PAID_SEARCH,
    "paid": Source.PAID_SEARCH,
    "paid_search": Source.PAID_SEARCH,
    "paidsearch": Source.PAID_SEARCH,
    "organic": Source.ORGANIC_SEARCH,
    "seo": Source.ORGANIC_SEARCH,
    "social": Source.SOCIAL,
    "paid_social": Source.SOCIAL,
    "paidsocial": Source.SOCIAL,
    "email": Source.EMAIL,
    "newsletter": Source.EMAIL,
    "referral": Source.REFERRAL,
    "event": Source.EVENT,
    "partner": Source.PARTNER,
    "affiliate": Source.PARTNER,
}

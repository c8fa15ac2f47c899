"""The choices of a lead's fields: its profile, origin, BANT qualification, email
status and score."""

from __future__ import annotations

from django.db import models


class Seniority(models.TextChoices):
    C_LEVEL = "c_level", "C-level"
    VP = "vp", "VP"
    DIRECTOR = "director", "Director"
    MANAGER = "manager", "Manager"
    INDIVIDUAL = "individual", "Individual contributor"
    STUDENT = "student", "Student"
    UNKNOWN = "", "Unknown"


class Department(models.TextChoices):
    EXECUTIVE = "executive", "Executive"
    SALES = "sales", "Sales"
    MARKETING = "marketing", "Marketing"
    ENGINEERING = "engineering", "Engineering"
    IT = "it", "IT"
    FINANCE = "finance", "Finance"
    OPERATIONS = "operations", "Operations"
    HR = "hr", "Human resources"
    OTHER = "other", "Other"
    UNKNOWN = "", "Unknown"


class Source(models.TextChoices):
    WEBSITE = "website", "Website"
    ORGANIC_SEARCH = "organic_search", "Organic search"
    PAID_SEARCH = "paid_search", "Paid search"
    SOCIAL = "social", "Social"
    EMAIL = "email", "Email"
    REFERRAL = "referral", "Referral"
    EVENT = "event", "Event"
    PARTNER = "partner", "Partner"
    OUTBOUND = "outbound", "Outbound"
    IMPORT = "import", "Import"
    OTHER = "other", "Other"


class Budget(models.TextChoices):
    UNKNOWN = "", "Unknown"
    NONE = "none", "No budget"
    UNDER_10K = "under_10k", "Under 10k"
    FROM_10K = "10k_50k", "10k to 50k"
    FROM_50K = "50k_250k", "50k to 250k"
    OVER_250K = "over_250k", "Over 250k"


class Authority(models.TextChoices):
    UNKNOWN = "", "Unknown"
    DECISION_MAKER = "decision_maker", "Decision maker"
    INFLUENCER = "influencer", "Influencer"
    USER = "user", "End user"
    NONE = "none", "No authority"


class Need(models.TextChoices):
    UNKNOWN = "", "Unknown"
    HIGH = "high", "High"
    MEDIUM = "medium", "Medium"
    LOW = "low", "Low"
    NONE = "none", "None"


class Timeline(models.TextChoices):
    UNKNOWN = "", "Unknown"
    NOW = "now", "Now"
    QUARTER = "quarter", "Within 3 months"
    HALF_YEAR = "half_year", "Within 6 months"
    YEAR = "year", "Within 12 months"
    LATER = "later", "Later or never"


class EmailStatus(models.TextChoices):
    VALID = "valid", "Valid"
    BOUNCED = "bounced", "Bounced"
    UNSUBSCRIBED = "unsubscribed", "Unsubscribed"


class Band(models.TextChoices):
    HOT = "hot", "Hot"
    WARM = "warm", "Warm"
    COLD = "cold", "Cold"


class Grade(models.TextChoices):
    A = "A", "A"
    B = "B", "B"
    C = "C", "C"
    D = "D", "D"


class Quadrant(models.TextChoices):
    """Fit against engagement: who to call, who to nurture, who to watch, who to ignore.

    The labels share no word with the bands (a lead can be in the hot band and not be a
    prime lead, or the reverse). The stored values keep their first names: the scoring
    SQL writes them on every lead, the lead rank indexes them, and saved views and API
    clients filter on them.
    """

    HOT = "hot", "Prime (good fit, engaged)"
    TARGET = "target", "Long-term target (good fit, quiet)"
    RESEARCHER = "researcher", "Researcher (poor fit, engaged)"
    COLD = "cold", "Unlikely (poor fit, quiet)"

"""The demo world: a deterministic, realistic CRM that ``manage.py seed_demo`` writes.

Outcomes come from a hidden propensity model. Every lead first gets a latent fit
(partly shared with its company) and a latent intent; its attributes are drawn
tilted by the fit and its activities tilted by the intent. How far it gets down
the funnel, and whether its deal is won, is then drawn from a logistic function
of ``hidden_fit`` and ``hidden_behaviour`` of what was generated, plus noise.
Both functions read only stored values, so a test (or a data scientist) can
recompute them from the database, and scoring rules built on the same
attributes and activities find real signal.

Determinism: all randomness comes from one ``random.Random(seed)`` consumed in
lead order, and every time is an offset from an anchor ``now`` passed in, so the
same seed, lead count, activity rate and anchor give the same world whatever the
batch size or database. Nothing here reads the database ids it is given to draw
anything.

Writing streams chunks of whole companies with their leads: ``bulk_create`` on
any database, ``COPY`` on PostgreSQL for big worlds, so memory stays bounded
whatever the number of leads.
"""

from __future__ import annotations

import functools
import io
import json
import math
import random
import unicodedata
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from operator import attrgetter
from typing import Any, TypeVar
from urllib.parse import urlsplit

from django.contrib.auth.hashers import make_password
from django.contrib.auth.models import Group
from django.db import connection, models, reset_queries, transaction
from django.utils import timezone

from crm.models import Role, Team, User
from leads.custom_fields import CustomFieldDefinition, FieldType
from leads.handoff_models import AssignmentKind, AssignmentRule
from leads.models import (
    Activity,
    ActivityType,
    Authority,
    Budget,
    Company,
    Deal,
    DealOutcome,
    DealStatus,
    Department,
    EmailStatus,
    Industry,
    Lead,
    Need,
    Note,
    ProductLine,
    Seniority,
    Source,
    Stage,
    StageChange,
    Task,
    TaskKind,
    Timeline,
    furthest_step_of,
    normalize_email,
)

T = TypeVar("T")

DEFAULT_LEADS = 2000
DEFAULT_SEED = 42
DEFAULT_ACTIVITIES_PER_LEAD = 12.0
DEFAULT_BATCH_SIZE = 2000
# From this many leads on, PostgreSQL gets its rows through COPY instead of INSERT.
COPY_THRESHOLD = 50_000
HISTORY_DAYS = 180
DEMO_PASSWORD = "hotlist"
ACTIVITY_SOURCE = "demo"
SITE = "https://hotlist.example"
# How far the tracking pipeline lags behind the event it records.
RECEIVE_DELAY = timedelta(seconds=3)

DAY = 86_400.0
HOUR = 3_600.0


class DemoWorldExists(Exception):
    """The database holds leads already; the demo world is only seeded into an empty one."""


# --- Reference data ---------------------------------------------------------------


@dataclass(frozen=True)
class Country:
    code: str
    weight: float
    tld: str
    legal_forms: tuple[str, ...]
    phone_prefix: str
    names: str
    regions: tuple[tuple[str, tuple[str, ...]], ...]


# fmt: off
COUNTRIES: tuple[Country, ...] = (
    Country("DE", 22, "de", ("GmbH", "AG", "GmbH & Co. KG"), "+49", "de", (
        ("Bavaria", ("Munich", "Nuremberg", "Augsburg", "Regensburg")),
        ("Berlin", ("Berlin",)),
        ("Hamburg", ("Hamburg",)),
        ("North Rhine-Westphalia", ("Cologne", "Düsseldorf", "Dortmund", "Essen", "Bonn")),
        ("Baden-Württemberg", ("Stuttgart", "Karlsruhe", "Mannheim", "Freiburg")),
        ("Hesse", ("Frankfurt am Main", "Wiesbaden", "Darmstadt")),
        ("Saxony", ("Leipzig", "Dresden")),
    )),
    Country("US", 14, "com", ("Inc.", "LLC", "Corp."), "+1", "en", (
        ("California", ("San Francisco", "Los Angeles", "San Diego", "San Jose")),
        ("New York", ("New York", "Buffalo")),
        ("Texas", ("Austin", "Dallas", "Houston")),
        ("Massachusetts", ("Boston", "Cambridge")),
        ("Illinois", ("Chicago",)),
        ("Washington", ("Seattle", "Bellevue")),
    )),
    Country("GB", 12, "co.uk", ("Ltd", "PLC"), "+44", "en", (
        ("England", ("London", "Manchester", "Birmingham", "Leeds", "Bristol", "Cambridge")),
        ("Scotland", ("Edinburgh", "Glasgow", "Aberdeen")),
        ("Wales", ("Cardiff", "Swansea")),
    )),
    Country("FR", 8, "fr", ("SAS", "SA", "SARL"), "+33", "fr", (
        ("Île-de-France", ("Paris", "Boulogne-Billancourt")),
        ("Auvergne-Rhône-Alpes", ("Lyon", "Grenoble")),
        ("Provence-Alpes-Côte d'Azur", ("Marseille", "Nice")),
        ("Occitanie", ("Toulouse", "Montpellier")),
        ("Nouvelle-Aquitaine", ("Bordeaux",)),
    )),
    Country("NL", 7, "nl", ("B.V.", "N.V."), "+31", "nl", (
        ("North Holland", ("Amsterdam", "Haarlem")),
        ("South Holland", ("Rotterdam", "The Hague", "Leiden")),
        ("Utrecht", ("Utrecht",)),
        ("North Brabant", ("Eindhoven", "Tilburg")),
    )),
    Country("AT", 5, "at", ("GmbH", "AG"), "+43", "de", (
        ("Vienna", ("Vienna",)),
        ("Styria", ("Graz",)),
        ("Upper Austria", ("Linz",)),
        ("Salzburg", ("Salzburg",)),
        ("Tyrol", ("Innsbruck",)),
    )),
    Country("CH", 5, "ch", ("AG", "GmbH", "SA"), "+41", "de", (
        ("Zurich", ("Zurich", "Winterthur")),
        ("Geneva", ("Geneva",)),
        ("Bern", ("Bern",)),
        ("Basel-Stadt", ("Basel",)),
        ("Vaud", ("Lausanne",)),
    )),
    Country("ES", 5, "es", ("S.L.", "S.A."), "+34", "es", (
        ("Madrid", ("Madrid",)),
        ("Catalonia", ("Barcelona", "Girona")),
        ("Valencia", ("Valencia", "Alicante")),
        ("Andalusia", ("Seville", "Málaga")),
        ("Basque Country", ("Bilbao",)),
    )),
    Country("IT", 5, "it", ("S.r.l.", "S.p.A."), "+39", "it", (
        ("Lombardy", ("Milan", "Bergamo", "Brescia")),
        ("Lazio", ("Rome",)),
        ("Piedmont", ("Turin",)),
        ("Emilia-Romagna", ("Bologna", "Modena")),
        ("Veneto", ("Venice", "Verona")),
    )),
    Country("SE", 4, "se", ("AB",), "+46", "nordic", (
        ("Stockholm", ("Stockholm",)),
        ("Västra Götaland", ("Gothenburg",)),
        ("Skåne", ("Malmö", "Lund")),
    )),
    Country("DK", 3, "dk", ("ApS", "A/S"), "+45", "nordic", (
        ("Capital Region", ("Copenhagen",)),
        ("Central Jutland", ("Aarhus",)),
        ("Southern Denmark", ("Odense",)),
    )),
    Country("PL", 5, "pl", ("sp. z o.o.", "S.A."), "+48", "pl", (
        ("Masovia", ("Warsaw",)),
        ("Lesser Poland", ("Kraków",)),
        ("Lower Silesia", ("Wrocław",)),
        ("Pomerania", ("Gdańsk", "Gdynia")),
    )),
    Country("IE", 3, "ie", ("Ltd", "DAC"), "+353", "en", (
        ("Leinster", ("Dublin", "Kilkenny")),
        ("Munster", ("Cork", "Limerick")),
        ("Connacht", ("Galway",)),
    )),
)
# fmt: on
COUNTRY_WEIGHTS = [c.weight for c in COUNTRIES]

# fmt: off
NAMES: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "de": (
        ("Anna", "Lukas", "Julia", "Maximilian", "Laura", "Felix", "Sophie", "Jonas", "Lena",
         "Tobias", "Katharina", "Stefan", "Sabine", "Jürgen", "Miriam", "Thomas", "Claudia",
         "Matthias", "Nina", "Florian", "Andrea", "Markus"),
        ("Müller", "Schmidt", "Schneider", "Fischer", "Weber", "Meyer", "Wagner", "Becker",
         "Schulz", "Hoffmann", "Koch", "Richter", "Klein", "Wolf", "Schröder", "Neumann",
         "Zimmermann", "Braun", "Krüger", "Hofmann", "Lange", "Weiß"),
    ),
    "en": (
        ("James", "Emma", "Oliver", "Olivia", "Harry", "Amelia", "George", "Sophia", "Jack",
         "Isla", "Michael", "Sarah", "David", "Emily", "Daniel", "Jessica", "Chris", "Hannah",
         "Ryan", "Megan", "Priya", "Wei", "Carlos", "Aisha"),
        ("Smith", "Jones", "Taylor", "Brown", "Williams", "Wilson", "Johnson", "Davies", "Evans",
         "Roberts", "Walker", "Wright", "Robinson", "Thompson", "White", "Hughes", "Edwards",
         "Green", "Hall", "Murphy", "O'Brien", "Kelly", "Patel", "Chen"),
    ),
    "fr": (
        ("Camille", "Louis", "Léa", "Hugo", "Chloé", "Gabriel", "Manon", "Jules", "Inès",
         "Arthur", "Élodie", "Nicolas", "Julien", "Céline", "Mathieu", "Pauline"),
        ("Martin", "Bernard", "Dubois", "Thomas", "Robert", "Richard", "Petit", "Durand",
         "Leroy", "Moreau", "Simon", "Laurent", "Lefèvre", "Michel", "Roux", "Fournier"),
    ),
    "nl": (
        ("Daan", "Emma", "Sem", "Julia", "Lucas", "Sanne", "Bram", "Lotte", "Thijs", "Fleur",
         "Jeroen", "Anouk", "Ruben", "Eva", "Niels", "Femke"),
        ("de Jong", "Jansen", "de Vries", "van den Berg", "van Dijk", "Bakker", "Visser",
         "Smit", "Meijer", "de Boer", "Mulder", "de Groot", "Bos", "Vos", "Peters", "Hendriks"),
    ),
    "es": (
        ("Lucía", "Hugo", "Martina", "Pablo", "María", "Daniel", "Paula", "Alejandro", "Carmen",
         "Javier", "Sofía", "Sergio", "Elena", "Diego", "Laura", "Álvaro"),
        ("García", "Fernández", "González", "Rodríguez", "López", "Martínez", "Sánchez",
         "Pérez", "Gómez", "Martín", "Jiménez", "Ruiz", "Hernández", "Díaz", "Moreno",
         "Álvarez"),
    ),
    "it": (
        ("Giulia", "Alessandro", "Francesca", "Lorenzo", "Chiara", "Matteo", "Sara", "Andrea",
         "Martina", "Luca", "Elena", "Marco", "Valentina", "Davide", "Federica", "Simone"),
        ("Rossi", "Russo", "Ferrari", "Esposito", "Bianchi", "Romano", "Colombo", "Ricci",
         "Marino", "Greco", "Bruno", "Gallo", "Conti", "De Luca", "Costa", "Giordano"),
    ),
    "nordic": (
        ("Erik", "Anna", "Lars", "Maja", "Johan", "Elsa", "Anders", "Ingrid", "Magnus",
         "Freja", "Nils", "Sofie", "Mikkel", "Astrid", "Oskar", "Ida"),
        ("Andersson", "Johansson", "Karlsson", "Nilsson", "Eriksson", "Larsen", "Jensen",
         "Nielsen", "Hansen", "Pedersen", "Lindqvist", "Berg", "Lund", "Holm", "Dahl",
         "Sørensen"),
    ),
    "pl": (
        ("Anna", "Piotr", "Katarzyna", "Tomasz", "Magdalena", "Paweł", "Agnieszka", "Michał",
         "Joanna", "Krzysztof", "Aleksandra", "Marcin", "Zofia", "Jakub", "Ewa", "Łukasz"),
        ("Nowak", "Kowalski", "Wiśniewski", "Wójcik", "Kowalczyk", "Kamiński", "Lewandowski",
         "Zieliński", "Szymański", "Woźniak", "Dąbrowski", "Kozłowski", "Jankowski", "Mazur",
         "Kwiatkowski", "Krawczyk"),
    ),
}

# fmt: on
FREE_MAIL_DOMAINS = (
    "gmail.com",
    "yahoo.com",
    "outlook.com",
    "hotmail.com",
    "icloud.com",
    "gmx.de",
    "web.de",
    "proton.me",
    "orange.fr",
    "libero.it",
)
DISPOSABLE_DOMAINS = ("mailinator.com", "yopmail.com", "10minutemail.com", "guerrillamail.com")
COMPETITOR_DOMAINS = ("pipedrive.com", "hubspot.com", "salesforce.com", "zoho.com")
SPAM_LOCAL_PARTS = ("test", "asdf", "qwerty", "noreply", "xxx", "aaa", "fake", "spam")


@dataclass(frozen=True)
class IndustryProfile:
    weight: float
    revenue_per_employee: int | None
    words: tuple[str, ...]


INDUSTRIES: dict[str, IndustryProfile] = {
    Industry.SOFTWARE: IndustryProfile(
        18, 180_000, ("Software", "Labs", "Systems", "Cloud", "Digital", "Data")
    ),
    Industry.FINANCE: IndustryProfile(
        9, 320_000, ("Capital", "Finance", "Bank", "Invest", "Insurance", "Payments")
    ),
    Industry.HEALTHCARE: IndustryProfile(
        8, 130_000, ("Health", "Medical", "Clinics", "Care", "Pharma", "Diagnostics")
    ),
    Industry.MANUFACTURING: IndustryProfile(
        12, 240_000, ("Industries", "Manufacturing", "Works", "Machinery", "Components", "Metals")
    ),
    Industry.RETAIL: IndustryProfile(
        9, 160_000, ("Retail", "Stores", "Market", "Outfitters", "Home", "Goods")
    ),
    Industry.EDUCATION: IndustryProfile(
        6, 70_000, ("Academy", "Learning", "College", "School", "Education", "Institute")
    ),
    Industry.GOVERNMENT: IndustryProfile(3, None, ("Agency", "Authority", "Council", "Office")),
    Industry.MEDIA: IndustryProfile(
        6, 150_000, ("Media", "Studios", "Publishing", "News", "Broadcasting", "Press")
    ),
    Industry.LOGISTICS: IndustryProfile(
        9, 200_000, ("Logistics", "Freight", "Shipping", "Transport", "Cargo", "Fleet")
    ),
    Industry.CONSULTING: IndustryProfile(
        10, 140_000, ("Consulting", "Partners", "Advisory", "Group", "Associates", "Strategy")
    ),
    Industry.NONPROFIT: IndustryProfile(
        3, 60_000, ("Foundation", "Trust", "Alliance", "Relief", "Society")
    ),
    Industry.OTHER: IndustryProfile(
        7, 120_000, ("Holdings", "Ventures", "Services", "Solutions", "Collective")
    ),
}
# Company names are a stem (two words fused) and a word of the industry, so no two
# industries can produce the same name or domain.
_STEM_FIRST = (
    "Nord",
    "Blue",
    "Alpen",
    "Silver",
    "Bright",
    "Cedar",
    "Delta",
    "Ember",
    "Falcon",
    "Granite",
    "Harbor",
    "Iron",
    "Juniper",
    "Kestrel",
    "Lumen",
    "Maple",
    "Nova",
    "Orbit",
    "Pioneer",
    "Quartz",
    "River",
    "Summit",
    "Tidal",
    "Vertex",
    "Willow",
    "Zenith",
    "Atlas",
    "Beacon",
    "Cobalt",
    "Crescent",
    "Fjord",
    "Helios",
    "Keystone",
    "Meridian",
    "Polar",
    "Redwood",
    "Sterling",
    "Sunrise",
    "Vantage",
    "Aurora",
)
_STEM_SECOND = ("", "bay", "peak", "stone", "field", "bridge", "gate", "point", "line", "wave")
COMPANY_STEMS = tuple(dict.fromkeys(a + b for a in _STEM_FIRST for b in _STEM_SECOND))
_NO_LEGAL_FORM = {Industry.GOVERNMENT, Industry.NONPROFIT, Industry.EDUCATION}

# Company size buckets: (smallest, largest, share of companies, fit).
SIZE_BUCKETS: tuple[tuple[int, int, float, float], ...] = (
    (1, 9, 0.33, -0.9),
    (10, 49, 0.30, -0.2),
    (50, 199, 0.18, 0.5),
    (200, 999, 0.11, 0.7),
    (1000, 4999, 0.05, 0.5),
    (5000, 300_000, 0.03, 0.2),
)

# Job titles by seniority and department; the student and unknown rows ignore department.
# fmt: off
TITLES: dict[str, dict[str, tuple[str, ...]]] = {
    Seniority.C_LEVEL: {
        Department.EXECUTIVE: ("CEO", "Managing Director", "Founder & CEO", "Co-Founder", "Owner"),
        Department.SALES: ("Chief Revenue Officer", "Chief Sales Officer"),
        Department.MARKETING: ("CMO", "Chief Marketing Officer"),
        Department.ENGINEERING: ("CTO",),
        Department.IT: ("CIO", "Chief Information Officer"),
        Department.FINANCE: ("CFO",),
        Department.OPERATIONS: ("COO",),
        Department.HR: ("Chief People Officer",),
    },
    Seniority.VP: {
        Department.SALES: ("VP of Sales", "VP Sales EMEA", "SVP Sales"),
        Department.MARKETING: ("VP of Marketing", "VP Demand Generation"),
        Department.ENGINEERING: ("VP of Engineering",),
        Department.IT: ("VP of IT",),
        Department.FINANCE: ("VP of Finance",),
        Department.OPERATIONS: ("VP of Operations",),
        Department.HR: ("VP of People",),
    },
    Seniority.DIRECTOR: {
        Department.SALES: ("Head of Sales", "Sales Director", "Director of Business Development"),
        Department.MARKETING: ("Head of Marketing", "Marketing Director", "Head of Growth"),
        Department.ENGINEERING: ("Head of Engineering", "Director of Engineering"),
        Department.IT: ("IT Director", "Head of IT"),
        Department.FINANCE: ("Finance Director", "Head of Finance"),
        Department.OPERATIONS: ("Head of Operations", "Director of Operations"),
        Department.HR: ("HR Director", "Head of People"),
        Department.OTHER: ("Head of Customer Success",),
    },
    Seniority.MANAGER: {
        Department.SALES: ("Sales Manager", "Regional Sales Manager", "Inside Sales Manager"),
        Department.MARKETING: (
            "Marketing Manager", "Marketing Operations Manager", "Demand Generation Manager",
            "Content Marketing Manager",
        ),
        Department.ENGINEERING: ("Engineering Manager",),
        Department.IT: ("IT Manager",),
        Department.FINANCE: ("Finance Manager", "Controller"),
        Department.OPERATIONS: ("Operations Manager", "Project Manager"),
        Department.HR: ("HR Manager",),
        Department.OTHER: ("Office Manager", "Customer Success Manager"),
    },
    Seniority.INDIVIDUAL: {
        Department.SALES: (
            "Account Executive", "Sales Development Representative", "Account Manager",
        ),
        Department.MARKETING: ("Marketing Specialist", "Growth Marketer", "Content Writer"),
        Department.ENGINEERING: ("Software Engineer", "Senior Software Engineer", "Data Engineer"),
        Department.IT: ("System Administrator", "IT Specialist"),
        Department.FINANCE: ("Accountant", "Financial Analyst"),
        Department.OPERATIONS: ("Operations Analyst", "Business Analyst"),
        Department.HR: ("Recruiter", "HR Generalist"),
        Department.OTHER: ("Consultant", "Assistant", "Freelancer"),
    },
    Seniority.STUDENT: {
        "": ("Student", "MBA Student", "Working Student", "Intern", "PhD Candidate"),
    },
    Seniority.UNKNOWN: {"": ("",)},
}

# fmt: on
PRODUCT_LINES: tuple[tuple[str, str, int], ...] = (
    # slug, name, typical first-year deal in EUR for a 50-person company
    ("hotlist-crm", "Hotlist CRM", 9_000),
    ("hotlist-analytics", "Hotlist Analytics", 14_000),
    ("hotlist-enterprise", "Hotlist Enterprise", 42_000),
)
CRM_IN_USE = ("none", "spreadsheets", "salesforce", "hubspot", "pipedrive", "other")
FLEET_INDUSTRIES = {Industry.LOGISTICS, Industry.MANUFACTURING, Industry.RETAIL}

# source, weight, how strongly the source leans towards high-intent leads
SOURCES: tuple[tuple[str, float, float], ...] = (
    (Source.WEBSITE, 20, 0.2),
    (Source.ORGANIC_SEARCH, 18, 0.0),
    (Source.PAID_SEARCH, 14, 0.1),
    (Source.SOCIAL, 10, -0.3),
    (Source.EMAIL, 8, 0.0),
    (Source.REFERRAL, 6, 0.6),
    (Source.EVENT, 7, 0.3),
    (Source.PARTNER, 4, 0.5),
    (Source.OUTBOUND, 7, -0.4),
    (Source.IMPORT, 5, -0.5),
    (Source.OTHER, 1, 0.0),
)
# source -> (campaign, utm_source, utm_medium, utm_campaign, utm terms)
# fmt: off
CAMPAIGNS: dict[str, tuple[tuple[str, str, str, str, tuple[str, ...]], ...]] = {
    Source.PAID_SEARCH: (
        ("Google Ads: Lead scoring", "google", "cpc", "lead_scoring_generic",
         ("lead scoring software", "crm with lead scoring", "predictive lead scoring")),
        ("Google Ads: Brand", "google", "cpc", "brand", ("hotlist crm", "hotlist")),
        ("Bing Ads: CRM", "bing", "cpc", "crm_generic", ("b2b crm", "crm for small business")),
    ),
    Source.SOCIAL: (
        ("LinkedIn: Sales leaders", "linkedin", "paid_social", "sales_leaders_abm", ()),
        ("LinkedIn: Organic posts", "linkedin", "social", "organic_posts", ()),
        ("X: Product launch", "twitter", "social", "product_launch", ()),
    ),
    Source.EMAIL: (
        ("Monthly newsletter", "newsletter", "email", "monthly_newsletter", ()),
        ("Nurture: Scoring guide", "hotlist", "email", "nurture_scoring_guide", ()),
    ),
    Source.EVENT: (
        ("Trade fair booth", "event", "offline", "trade_fair_booth", ()),
        ("Hotlist Roadshow", "event", "offline", "roadshow", ()),
    ),
    Source.PARTNER: (("Agency partner programme", "partner", "referral", "agency_program", ()),),
    Source.WEBSITE: (
        ("Webinar: Scoring sales trusts", "hotlist", "website", "webinar_scoring", ()),
    ),
    Source.OUTBOUND: (("Outbound: Mid-market EMEA", "", "", "", ()),),
    Source.IMPORT: (("List import: Partner event", "", "", "", ()),),
}

# fmt: on
# Pages: kind -> (paths, base weight, intent tilt, typical seconds on the page)
# fmt: off
PAGES: dict[str, tuple[tuple[str, ...], float, float, float]] = {
    "home": (("/",), 12, 0.0, 20),
    "blog": ((
        "/blog/lead-scoring-101", "/blog/mql-vs-sql", "/blog/speed-to-lead",
        "/blog/crm-data-hygiene", "/blog/sales-marketing-alignment",
        "/blog/predictive-scoring-explained", "/blog/b2b-buyer-intent",
        "/blog/email-nurture-playbook", "/blog/pipeline-review-checklist",
        "/blog/gdpr-for-sales-teams", "/blog/account-based-marketing-guide",
        "/blog/how-we-built-hotlist",
    ), 30, -0.2, 110),
    "features": ((
        "/features", "/features/lead-scoring", "/features/pipeline", "/features/email-tracking",
        "/features/reports", "/features/automation",
    ), 18, 0.3, 60),
    "pricing": (("/pricing", "/pricing/compare", "/pricing/enterprise"), 9, 1.0, 90),
    "customers": (
        ("/customers", "/customers/northwind-logistics", "/customers/alpenbank"), 6, 0.4, 70
    ),
    "integrations": (
        ("/integrations", "/integrations/slack", "/integrations/gmail", "/integrations/outlook"),
        6, 0.3, 40,
    ),
    "docs": (
        ("/docs/getting-started", "/docs/api", "/docs/scoring-rules", "/docs/import"),
        5, 0.2, 150,
    ),
    "security": (("/security", "/security/gdpr"), 3, 0.4, 45),
    "about": (("/about", "/contact"), 4, 0.0, 25),
    "careers": ((
        "/careers", "/careers/senior-backend-engineer", "/careers/account-executive",
        "/careers/product-designer", "/careers/working-student-marketing",
    ), 3, -1.2, 60),
}
# fmt: on
PAGE_KINDS = tuple(PAGES)
NEWSLETTERS = (
    ("Scoring tips for busy sales teams", "/blog/lead-scoring-101"),
    ("Product update: pipeline views", "/features/pipeline"),
    ("Case study: Northwind Logistics", "/customers/northwind-logistics"),
    ("Guide: the MQL to SQL hand-off", "/blog/mql-vs-sql"),
    ("New: Hotlist Analytics", "/features/reports"),
    ("Pricing that grows with you", "/pricing"),
)
ASSETS = (
    ("lead-scoring-playbook", "The lead scoring playbook"),
    ("crm-buyers-guide", "The CRM buyer's guide"),
    ("sla-template", "MQL to SQL hand-off template"),
    ("pipeline-benchmark", "Sales pipeline benchmark report"),
    ("roi-calculator", "Hotlist ROI calculator"),
)
WEBINARS = (
    ("scoring-sales-trusts", "Lead scoring that sales trusts"),
    ("pipeline-hygiene", "Pipeline hygiene in 30 minutes"),
    ("analytics-launch", "Launch: Hotlist Analytics"),
)
LOST_REASONS = (
    "Price too high",
    "Chose a competitor",
    "No decision",
    "Budget frozen",
    "Missing integration",
    "Built in-house",
)
SQL_EXIT_REASONS = (
    "No budget",
    "No real need",
    "Not the decision maker",
    "Too small for the product",
    "Already signed with a competitor",
)

# --- The hidden propensity model -----------------------------------------------

INDUSTRY_FIT: dict[str, float] = {
    Industry.SOFTWARE: 0.6,
    Industry.FINANCE: 0.5,
    Industry.LOGISTICS: 0.5,
    Industry.MANUFACTURING: 0.4,
    Industry.HEALTHCARE: 0.3,
    Industry.CONSULTING: 0.2,
    Industry.RETAIL: 0.1,
    Industry.MEDIA: 0.0,
    Industry.OTHER: -0.3,
    Industry.GOVERNMENT: -0.3,
    Industry.EDUCATION: -0.5,
    Industry.NONPROFIT: -0.6,
    "": -0.4,
}
UNKNOWN_SIZE_FIT = -0.4
SENIORITY_FIT: dict[str, float] = {
    Seniority.C_LEVEL: 0.5,
    Seniority.VP: 0.7,
    Seniority.DIRECTOR: 0.6,
    Seniority.MANAGER: 0.3,
    Seniority.INDIVIDUAL: -0.2,
    Seniority.STUDENT: -1.5,
    Seniority.UNKNOWN: -0.4,
}
DEPARTMENT_FIT: dict[str, float] = {
    Department.SALES: 0.3,
    Department.MARKETING: 0.3,
    Department.EXECUTIVE: 0.2,
    Department.IT: 0.1,
    Department.OPERATIONS: 0.0,
    Department.ENGINEERING: -0.1,
    Department.FINANCE: -0.1,
    Department.HR: -0.3,
    Department.OTHER: -0.2,
    Department.UNKNOWN: -0.2,
}
BUDGET_FIT: dict[str, float] = {
    Budget.OVER_250K: 0.6,
    Budget.FROM_50K: 0.6,
    Budget.FROM_10K: 0.3,
    Budget.UNDER_10K: -0.3,
    Budget.NONE: -0.9,
    Budget.UNKNOWN: 0.0,
}
AUTHORITY_FIT: dict[str, float] = {
    Authority.DECISION_MAKER: 0.6,
    Authority.INFLUENCER: 0.3,
    Authority.USER: -0.1,
    Authority.NONE: -0.6,
    Authority.UNKNOWN: 0.0,
}
NEED_FIT: dict[str, float] = {
    Need.HIGH: 0.7,
    Need.MEDIUM: 0.3,
    Need.LOW: -0.3,
    Need.NONE: -0.9,
    Need.UNKNOWN: 0.0,
}
TIMELINE_FIT: dict[str, float] = {
    Timeline.NOW: 0.6,
    Timeline.QUARTER: 0.5,
    Timeline.HALF_YEAR: 0.2,
    Timeline.YEAR: 0.0,
    Timeline.LATER: -0.6,
    Timeline.UNKNOWN: 0.0,
}
# What a lead's own behaviour says, per signal, for log(1 + count) occurrences.
# Rep-logged activities (calls, meetings, notes, replies to a rep) are consequences of
# the funnel, not behaviour, and count for nothing.
BEHAVIOUR_WEIGHTS: dict[str, float] = {
    "pricing_view": 0.9,
    "careers_view": -1.0,
    "page_view": 0.05,
    ActivityType.EMAIL_OPEN: 0.1,
    ActivityType.EMAIL_CLICK: 0.6,
    ActivityType.EMAIL_BOUNCE: -1.0,
    ActivityType.FORM_SUBMISSION: 0.2,
    ActivityType.CONTENT_DOWNLOAD: 0.4,
    ActivityType.WEBINAR_REGISTRATION: 0.3,
    ActivityType.WEBINAR_ATTENDANCE: 0.8,
    ActivityType.DEMO_REQUEST: 1.8,
    ActivityType.QUOTE_REQUEST: 1.6,
    ActivityType.TRIAL_SIGNUP: 1.0,
    ActivityType.SOCIAL_ENGAGEMENT: 0.1,
    ActivityType.EVENT_ATTENDANCE: 0.4,
    ActivityType.UNSUBSCRIBE: -1.5,
}
# How hard the latent fit and intent pull generated values towards good ones.
TILT = 1.0
# Where the funnel's odds are even: typical hidden values of a lead in the middle.
FIT_CENTER = 0.2
BEHAVIOUR_CENTER = 1.6
# Logistic intercepts per funnel step, and the weight of the hidden propensity.
# Getting through the funnel is mostly engagement; closing leans on fit (budget,
# authority, size) more than on clicks.
MQL_BIAS, SQL_BIAS, OPPORTUNITY_BIAS = 0.3, -1.2, -0.7
FUNNEL_FIT_SLOPE, FUNNEL_BEHAVIOUR_SLOPE = 0.7, 1.0
# The win bias is low because the leads that get this far are already the likelier ones.
WIN_BIAS, WIN_FIT_SLOPE, WIN_BEHAVIOUR_SLOPE, WIN_NOISE = -3.6, 1.5, 0.8, 0.7


def sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x))


def size_fit(employee_count: int | None) -> float:
    if employee_count is None:
        return UNKNOWN_SIZE_FIT
    for smallest, _, _, fit in reversed(SIZE_BUCKETS):
        if employee_count >= smallest:
            return fit
    return SIZE_BUCKETS[0][3]


def hidden_fit(
    *,
    industry: str,
    employee_count: int | None,
    seniority: str,
    department: str,
    budget: str,
    authority: str,
    need: str,
    timeline: str,
) -> float:
    """How well a lead fits the ideal customer, from its stored attributes.

    ``industry`` and ``employee_count`` are the company's ("" and None without one).
    A sum of per-attribute weights, unknown answers counting nothing: from about -6
    for a student at a tiny non-profit with no budget or need, to about +5 for a VP
    of Sales at a mid-sized software company with budget, buying now.
    """
    return (
        INDUSTRY_FIT.get(industry, 0.0)
        + size_fit(employee_count)
        + SENIORITY_FIT.get(seniority, 0.0)
        + DEPARTMENT_FIT.get(department, 0.0)
        + BUDGET_FIT.get(budget, 0.0)
        + AUTHORITY_FIT.get(authority, 0.0)
        + NEED_FIT.get(need, 0.0)
        + TIMELINE_FIT.get(timeline, 0.0)
    )


def behaviour_signal(activity_type: str, url: str) -> str | None:
    """The behaviour an activity shows: its type, or the kind of page it viewed."""
    if activity_type == ActivityType.PAGE_VIEW:
        path = urlsplit(url).path
        if path.startswith("/pricing"):
            return "pricing_view"
        if path.startswith("/careers"):
            return "careers_view"
        return "page_view"
    return activity_type if activity_type in BEHAVIOUR_WEIGHTS else None


def hidden_behaviour(activities: Iterable[tuple[str, str]]) -> float:
    """How much a lead's own activities say it wants to buy, from ``(type, url)`` pairs.

    Each signal counts ``weight * log(1 + occurrences)``: the first pricing visit
    says more than the tenth. Pricing visits, demo and quote requests, webinars and
    email clicks weigh most; opens barely; careers visits and unsubscribes subtract.
    """
    counts = Counter(behaviour_signal(kind, url) for kind, url in activities)
    counts.pop(None, None)
    return sum(BEHAVIOUR_WEIGHTS[signal] * math.log1p(n) for signal, n in counts.items())


def behaviour_scale(activities_per_lead: float) -> float:
    """How much longer a trail the same intent leaves in a world with more tracking.

    Hidden behaviour grows about as ``activities_per_lead ** 0.85`` (measured on
    generated worlds); dividing by this keeps the funnel's shape whatever the rate.
    """
    return (max(activities_per_lead, 1.0) / DEFAULT_ACTIVITIES_PER_LEAD) ** 0.85


def propensity(fit: float, behaviour: float, scale: float = 1.0) -> float:
    """The log-odds shift that fit and behaviour give a lead at every funnel step."""
    return FUNNEL_FIT_SLOPE * (fit - FIT_CENTER) + FUNNEL_BEHAVIOUR_SLOPE * (
        behaviour / scale - BEHAVIOUR_CENTER
    )


def win_odds(fit: float, behaviour: float, noise: float, scale: float = 1.0) -> float:
    """The log-odds of winning an opportunity's deal."""
    return (
        WIN_BIAS
        + WIN_FIT_SLOPE * (fit - FIT_CENTER)
        + WIN_BEHAVIOUR_SLOPE * (behaviour / scale - BEHAVIOUR_CENTER)
        + noise
    )


# --- The rows the generator produces ----------------------------------------------


@dataclass(slots=True)
class CompanyRow:
    name: str
    domain: str
    industry: str
    employee_count: int | None
    annual_revenue: Decimal | None
    country: str
    region: str
    city: str
    created_at: datetime
    id: int | None = None


@dataclass(slots=True)
class ActivityRow:
    type: str
    url: str = ""
    duration_seconds: int | None = None
    properties: dict[str, Any] = field(default_factory=dict)
    created_by_id: int | None = None
    occurred_at: datetime | None = None
    received_at: datetime | None = None
    idempotency_key: str = ""
    source: str = ACTIVITY_SOURCE
    scored_at: datetime | None = None
    lead: LeadRow | None = None

    @property
    def lead_id(self) -> int | None:
        return self.lead.id if self.lead else None


@dataclass(slots=True)
class StageChangeRow:
    from_stage: str
    to_stage: str
    at: datetime
    by_id: int | None
    reason: str
    lead: LeadRow | None = None

    @property
    def lead_id(self) -> int | None:
        return self.lead.id if self.lead else None


@dataclass(slots=True)
class DealRow:
    name: str
    amount: Decimal
    status: str
    created_at: datetime
    closed_at: datetime | None
    lost_reason: str = ""
    currency: str = "EUR"
    lead: LeadRow | None = None

    @property
    def lead_id(self) -> int | None:
        return self.lead.id if self.lead else None


@dataclass(slots=True)
class TaskRow:
    assignee_id: int
    title: str
    kind: str
    due_at: datetime
    done_at: datetime | None
    created_at: datetime
    lead: LeadRow | None = None

    @property
    def lead_id(self) -> int | None:
        return self.lead.id if self.lead else None


@dataclass(slots=True)
class NoteRow:
    author_id: int | None
    body: str
    created_at: datetime
    lead: LeadRow | None = None

    @property
    def lead_id(self) -> int | None:
        return self.lead.id if self.lead else None


@dataclass(slots=True)
class InterestRow:
    lead: LeadRow
    productline_id: int

    @property
    def lead_id(self) -> int | None:
        return self.lead.id


@dataclass(slots=True)
class LeadRow:
    serial: int
    kind: str  # "company", "private", "spam" or "competitor"
    company: CompanyRow | None
    first_name: str
    last_name: str
    email: str
    created_at: datetime
    country: str = ""
    region: str = ""
    city: str = ""
    phone: str = ""
    job_title: str = ""
    seniority: str = ""
    department: str = ""
    source: str = Source.WEBSITE
    campaign: str = ""
    utm_source: str = ""
    utm_medium: str = ""
    utm_campaign: str = ""
    utm_term: str = ""
    utm_content: str = ""
    budget: str = ""
    authority: str = ""
    need: str = ""
    timeline: str = ""
    owner_id: int | None = None
    stage: str = Stage.NEW
    stage_changed_at: datetime | None = None
    disqualification_reason: str = ""
    email_status: str = EmailStatus.VALID
    custom_fields: dict[str, Any] = field(default_factory=dict)
    first_activity_at: datetime | None = None
    last_activity_at: datetime | None = None
    furthest_step: int = 0
    deal_outcome: int = DealOutcome.NONE
    updated_at: datetime | None = None
    products: list[int] = field(default_factory=list)
    activities: list[ActivityRow] = field(default_factory=list)
    stage_changes: list[StageChangeRow] = field(default_factory=list)
    deals: list[DealRow] = field(default_factory=list)
    tasks: list[TaskRow] = field(default_factory=list)
    notes: list[NoteRow] = field(default_factory=list)
    id: int | None = None

    @property
    def company_id(self) -> int | None:
        return self.company.id if self.company else None

    def fit(self) -> float:
        company = self.company
        return hidden_fit(
            industry=company.industry if company else "",
            employee_count=company.employee_count if company else None,
            seniority=self.seniority,
            department=self.department,
            budget=self.budget,
            authority=self.authority,
            need=self.need,
            timeline=self.timeline,
        )

    def behaviour(self) -> float:
        return hidden_behaviour((a.type, a.url) for a in self.activities)


@dataclass(slots=True)
class LeadBundle:
    """A unit of generation and writing: a company and its leads, or one lead alone."""

    company: CompanyRow | None
    leads: list[LeadRow]


# --- Who the world belongs to -----------------------------------------------------


@dataclass(frozen=True)
class DemoRep:
    id: int
    username: str
    countries: tuple[str, ...]


@dataclass(frozen=True)
class DemoCast:
    """The people and product lines the generated rows point at."""

    marketer_id: int
    reps: tuple[DemoRep, ...]
    products: dict[str, int]  # slug -> id


@dataclass(frozen=True)
class DemoUser:
    username: str
    role: Role
    first_name: str
    last_name: str
    countries: tuple[str, ...] = ()
    products: tuple[str, ...] = ()


DEMO_USERS = (
    DemoUser("admin", Role.ADMIN, "Ada", "Admin"),
    DemoUser("marketer", Role.MARKETER, "Mia", "Marketer"),
    DemoUser("manager", Role.MANAGER, "Max", "Manager"),
    DemoUser(
        "rep1",
        Role.REP,
        "Rita",
        "Rep",
        ("DE", "AT", "CH", "PL", "SE", "DK"),
        ("hotlist-crm", "hotlist-analytics"),
    ),
    DemoUser(
        "rep2",
        Role.REP,
        "Ravi",
        "Rep",
        ("GB", "IE", "US", "FR", "NL", "ES", "IT"),
        ("hotlist-crm", "hotlist-enterprise"),
    ),
)
DEMO_TEAM = "Team North"

CUSTOM_FIELDS = (
    {
        "key": "fleet_size",
        "label": "Fleet size",
        "field_type": FieldType.INTEGER,
        "min_value": Decimal(0),
        "help_text": "Vehicles the company runs.",
    },
    {
        "key": "crm_in_use",
        "label": "CRM in use",
        "field_type": FieldType.CHOICE,
        "choices": list(CRM_IN_USE),
        "help_text": "What the lead works with today.",
    },
)


def demo_cast_ensure() -> DemoCast:
    """Create (or find) the demo users, their team, the product lines and custom fields.

    Idempotent: users are found by username and keep an existing password; new
    ones get ``DEMO_PASSWORD``.
    """
    products = {
        slug: ProductLine.objects.get_or_create(slug=slug, defaults={"name": name})[0]
        for slug, name, _ in PRODUCT_LINES
    }
    for spec in CUSTOM_FIELDS:
        key = spec["key"]
        CustomFieldDefinition.objects.get_or_create(
            key=key, defaults={k: v for k, v in spec.items() if k != "key"}
        )
    users = {spec.username: _demo_user_ensure(spec, products) for spec in DEMO_USERS}
    team, _ = Team.objects.get_or_create(name=DEMO_TEAM, defaults={"manager": users["manager"]})
    if team.manager_id is None:
        team.manager = users["manager"]
        team.save(update_fields=["manager"])
    for username in ("manager", "rep1", "rep2"):
        users[username].team = team
        users[username].save(update_fields=["team"])
    _assignment_rules_ensure(team, users["manager"])
    reps = tuple(
        DemoRep(users[s.username].pk, s.username, s.countries)
        for s in DEMO_USERS
        if s.role == Role.REP
    )
    return DemoCast(
        marketer_id=users["marketer"].pk,
        reps=reps,
        products={slug: p.pk for slug, p in products.items()},
    )


def _assignment_rules_ensure(team: Team, manager: User) -> None:
    """The hand-off's starter rules: each rep's own territory first, then round robin in
    the team, then the manager. Left alone when the admin has rules already."""
    if AssignmentRule.objects.exists():
        return
    AssignmentRule.objects.bulk_create(
        [
            AssignmentRule(
                name="Rep whose territory covers the lead's country",
                kind=AssignmentKind.TERRITORY,
                position=10,
            ),
            AssignmentRule(
                name=f"Round robin in {team.name}",
                kind=AssignmentKind.ROUND_ROBIN,
                team=team,
                position=20,
            ),
            AssignmentRule(
                name="The sales manager takes the rest",
                kind=AssignmentKind.FALLBACK,
                owner=manager,
                position=30,
            ),
        ]
    )


@functools.cache
def _demo_password_hash() -> str:
    """One hash for every demo user: hashing is slow on purpose, and the password public."""
    return make_password(DEMO_PASSWORD)


def _demo_user_ensure(spec: DemoUser, products: dict[str, ProductLine]) -> User:
    user, created = User.objects.get_or_create(
        username=spec.username,
        defaults={
            "first_name": spec.first_name,
            "last_name": spec.last_name,
            "email": f"{spec.username}@hotlist.example",
            "is_staff": spec.role != Role.REP,
            "is_superuser": spec.role == Role.ADMIN,
            "territory_countries": list(spec.countries),
        },
    )
    if created:
        user.password = _demo_password_hash()
        user.save(update_fields=["password"])
    if spec.role != Role.ADMIN:
        user.groups.add(Group.objects.get_or_create(name=spec.role.label)[0])
    if spec.products:
        user.product_lines.add(*(products[slug] for slug in spec.products))
    return user


# --- Generation -------------------------------------------------------------------


@dataclass(frozen=True)
class DemoConfig:
    leads: int = DEFAULT_LEADS
    seed: int = DEFAULT_SEED
    now: datetime = field(default_factory=lambda: day_start(timezone.now()))
    activities_per_lead: float = DEFAULT_ACTIVITIES_PER_LEAD
    batch_size: int = DEFAULT_BATCH_SIZE


def day_start(moment: datetime) -> datetime:
    return moment.replace(hour=0, minute=0, second=0, microsecond=0)


@dataclass
class _Ctx:
    """What generation carries from lead to lead."""

    config: DemoConfig
    cast: DemoCast
    rng: random.Random
    name_orders: dict[str, list[int]]
    companies_by_industry: Counter[str] = field(default_factory=Counter)
    serial: int = 0

    @property
    def now(self) -> datetime:
        return self.config.now

    @functools.cached_property
    def behaviour_scale(self) -> float:
        return behaviour_scale(self.config.activities_per_lead)

    def at(self, seconds_before_now: float) -> datetime:
        """A whole second, ``seconds_before_now`` before the anchor."""
        return _after(self.config.now, -seconds_before_now)


def generate_world(config: DemoConfig, cast: DemoCast) -> Iterator[LeadBundle]:
    """Yield the demo world as groups (a company with its leads, or a lone lead).

    Pure: touches no database. The same config and cast give the same groups.
    """
    rng = random.Random(config.seed)
    name_orders = {
        industry: _shuffled(rng, len(COMPANY_STEMS) * len(profile.words))
        for industry, profile in INDUSTRIES.items()
    }
    ctx = _Ctx(config=config, cast=cast, rng=rng, name_orders=name_orders)
    while ctx.serial < config.leads:
        yield _group(ctx)


def _shuffled(rng: random.Random, n: int) -> list[int]:
    order = list(range(n))
    rng.shuffle(order)
    return order


def _group(ctx: _Ctx) -> LeadBundle:
    """Mostly a company with a few leads (more for bigger companies); sometimes a lone
    spammer, competitor or private person with a free-mail address."""
    roll = ctx.rng.random()
    if roll < 0.03:
        return LeadBundle(None, [_lead(ctx, "spam", None)])
    if roll < 0.04:
        return LeadBundle(None, [_lead(ctx, "competitor", None)])
    if roll < 0.11:
        return LeadBundle(None, [_lead(ctx, "private", None)])
    company, company_fit = _company(ctx)
    size = company.employee_count or 20
    mean_extra = 0.3 + 0.35 * math.log10(size)
    count = 1 + min(int(ctx.rng.expovariate(1 / mean_extra)), 40)
    count = min(count, ctx.config.leads - ctx.serial)
    pattern = ctx.rng.choices(EMAIL_PATTERNS, EMAIL_PATTERN_WEIGHTS)[0]
    taken: set[str] = set()
    leads = [
        _lead(ctx, "company", company, company_fit, pattern=pattern, taken=taken)
        for _ in range(count)
    ]
    company.created_at = min(lead.created_at for lead in leads)
    return LeadBundle(company, leads)


def _tilted(rng: random.Random, options: Sequence[tuple[T, float, float]], latent: float) -> T:
    """Pick an option by ``weight * exp(TILT * latent * score)``: a high latent favours
    options that score well."""
    weights = [weight * math.exp(TILT * latent * score) for _, weight, score in options]
    return rng.choices([value for value, _, _ in options], weights)[0]


def _company(ctx: _Ctx) -> tuple[CompanyRow, float]:
    rng = ctx.rng
    latent = rng.gauss(0, 1)
    industry = _tilted(rng, [(k, p.weight, INDUSTRY_FIT[k]) for k, p in INDUSTRIES.items()], latent)
    bucket = _tilted(rng, [(b, b[2], b[3]) for b in SIZE_BUCKETS], latent)
    employees: int | None = _employees(rng, bucket)
    country = rng.choices(COUNTRIES, COUNTRY_WEIGHTS)[0]
    region, cities = rng.choice(country.regions)
    name, domain = _company_name(ctx, industry, country)
    revenue = _revenue(rng, industry, employees or 0)
    if rng.random() < 0.07:
        employees = None
    company = CompanyRow(
        name=name,
        domain=domain,
        industry=industry,
        employee_count=employees,
        annual_revenue=revenue,
        country=country.code,
        region=region,
        city=rng.choice(cities),
        created_at=ctx.now,
    )
    return company, latent


def _employees(rng: random.Random, bucket: tuple[int, int, float, float]) -> int:
    smallest, largest, _, _ = bucket
    if largest >= 100_000:  # the open-ended top: a Pareto tail
        return min(int(smallest * rng.paretovariate(1.1)), largest)
    return int(math.exp(rng.uniform(math.log(smallest), math.log(largest + 1))))


def _revenue(rng: random.Random, industry: str, employees: int) -> Decimal | None:
    per_employee = INDUSTRIES[industry].revenue_per_employee
    if per_employee is None or not employees or rng.random() < 0.15:
        return None
    revenue = employees * per_employee * rng.lognormvariate(0, 0.4)
    return Decimal(max(1, round(revenue / 1000)) * 1000)


def _company_name(ctx: _Ctx, industry: str, country: Country) -> tuple[str, str]:
    """A name and a domain unique across the world: the n-th company of an industry
    takes the n-th name of the industry's shuffled list, numbered once the list is spent."""
    words = INDUSTRIES[industry].words
    order = ctx.name_orders[industry]
    n = ctx.companies_by_industry[industry]
    ctx.companies_by_industry[industry] += 1
    stem_index, word_index = divmod(order[n % len(order)], len(words))
    stem, word = COMPANY_STEMS[stem_index], words[word_index]
    generation = n // len(order)
    suffix = str(generation + 1) if generation else ""
    domain = f"{stem.lower()}-{word.lower()}{suffix}.{country.tld}"
    legal = "" if industry in _NO_LEGAL_FORM else " " + ctx.rng.choice(country.legal_forms)
    return f"{stem} {word}{legal}", domain


EMAIL_PATTERNS: tuple[Callable[[str, str], str], ...] = (
    lambda first, last: f"{first}.{last}",
    lambda first, last: f"{first[0]}.{last}",
    lambda first, last: f"{first[0]}{last}",
    lambda first, last: f"{first}",
    lambda first, last: f"{first}_{last}",
)
EMAIL_PATTERN_WEIGHTS = (50, 15, 15, 12, 8)


def ascii_slug(text: str) -> str:
    """``Jürgen`` → ``jurgen``, ``de Jong`` → ``dejong``, ``O'Brien`` → ``obrien``."""
    text = text.translate(_TRANSLITERATE)
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(c for c in decomposed.lower() if c.isascii() and c.isalnum())


_TRANSLITERATE = str.maketrans({"ß": "ss", "ø": "o", "Ø": "O", "æ": "ae", "ł": "l", "Ł": "L"})


def _lead(
    ctx: _Ctx,
    kind: str,
    company: CompanyRow | None,
    company_fit: float = -1.0,  # no company to speak of: a worse fit
    *,
    pattern: Callable[[str, str], str] | None = None,
    taken: set[str] | None = None,
) -> LeadRow:
    rng = ctx.rng
    serial = ctx.serial
    ctx.serial += 1
    fit = 0.6 * company_fit + 0.8 * rng.gauss(0, 1)
    intent = 0.3 * fit + 0.95 * rng.gauss(0, 1)
    country = _country_of(company) if company else rng.choices(COUNTRIES, COUNTRY_WEIGHTS)[0]
    firsts, lasts = NAMES[country.names]
    first, last = rng.choice(firsts), rng.choice(lasts)
    age = HISTORY_DAYS * DAY * rng.random() ** 1.15 + HOUR
    lead = LeadRow(
        serial=serial,
        kind=kind,
        company=company,
        first_name=first,
        last_name=last,
        email="",
        created_at=ctx.at(age),
    )
    _place(ctx, lead, country)
    _person(ctx, lead, fit, company)
    lead.email = _email(ctx, lead, pattern, taken)
    _marketing(ctx, lead, intent)
    _interests(ctx, lead)
    _custom_fields(ctx, lead)
    episodes = _own_activities(ctx, lead, intent)
    path = _journey(ctx, lead)
    _follow_up(ctx, lead, path)
    _episode_times(ctx, lead, path, episodes)
    _finish(ctx, lead)
    return lead


def _country_of(company: CompanyRow) -> Country:
    return next(c for c in COUNTRIES if c.code == company.country)


def _place(ctx: _Ctx, lead: LeadRow, country: Country) -> None:
    rng = ctx.rng
    company = lead.company
    if company and rng.random() < 0.9:
        lead.country, lead.region, lead.city = company.country, company.region, company.city
    elif lead.kind == "spam" and rng.random() < 0.6:
        return
    else:
        region, cities = rng.choice(country.regions)
        lead.country, lead.region, lead.city = country.code, region, rng.choice(cities)
    if lead.kind != "spam" and rng.random() < 0.65:
        lead.phone = (
            f"{country.phone_prefix} {rng.randint(20, 999)} {rng.randint(100_000, 9_999_999)}"
        )


def _person(ctx: _Ctx, lead: LeadRow, fit: float, company: CompanyRow | None) -> None:
    """Seniority, department, title and BANT, drawn tilted by the lead's latent fit."""
    rng = ctx.rng
    if lead.kind == "spam":
        lead.first_name, lead.last_name = rng.choice((("Test", "Test"), ("asdf", "asdf"), ("", "")))
        return
    small = company is not None and (company.employee_count or 0) < 20
    seniorities = [
        (s, w * (4 if small and s == Seniority.C_LEVEL else 1), SENIORITY_FIT[s])
        for s, w in (
            (Seniority.C_LEVEL, 6),
            (Seniority.VP, 6),
            (Seniority.DIRECTOR, 12),
            (Seniority.MANAGER, 25),
            (Seniority.INDIVIDUAL, 40),
            (Seniority.STUDENT, 3),
            (Seniority.UNKNOWN, 8),
        )
    ]
    lead.seniority = _tilted(rng, seniorities, fit)
    by_department = TITLES[lead.seniority]
    departments = [
        (d, 8 if d == Department.EXECUTIVE else 3, DEPARTMENT_FIT[d]) for d in by_department
    ]
    if lead.seniority not in (Seniority.C_LEVEL, Seniority.STUDENT, Seniority.UNKNOWN):
        departments = [(d, _DEPARTMENT_WEIGHTS[d], DEPARTMENT_FIT[d]) for d in by_department]
    lead.department = _tilted(rng, departments, fit)
    lead.job_title = rng.choice(by_department[lead.department])
    lead.budget = _bant(rng, BUDGET_FIT, fit, 0.5)
    lead.authority = _bant(rng, AUTHORITY_FIT, fit, 0.55)
    lead.need = _bant(rng, NEED_FIT, fit, 0.5)
    lead.timeline = _bant(rng, TIMELINE_FIT, fit, 0.45)


_DEPARTMENT_WEIGHTS: dict[str, float] = {
    Department.SALES: 22,
    Department.MARKETING: 22,
    Department.ENGINEERING: 14,
    Department.IT: 10,
    Department.FINANCE: 7,
    Department.OPERATIONS: 10,
    Department.HR: 5,
    Department.OTHER: 6,
}


def _bant(rng: random.Random, scores: dict[str, float], fit: float, known: float) -> str:
    """A BANT answer, known with probability ``known``; good answers for good fits."""
    if rng.random() >= known:
        return ""
    return _tilted(rng, [(value, 1.0, score) for value, score in scores.items() if value], fit)


def _email(
    ctx: _Ctx,
    lead: LeadRow,
    pattern: Callable[[str, str], str] | None,
    taken: set[str] | None,
) -> str:
    """A normalized address, unique in the world: at the company domain (unique within
    the company), or numbered with the lead's serial (unique everywhere)."""
    rng = ctx.rng
    first, last = ascii_slug(lead.first_name) or "x", ascii_slug(lead.last_name) or "x"
    number = lead.serial + 1
    if lead.kind == "spam":
        raw = f"{rng.choice(SPAM_LOCAL_PARTS)}{number}@{rng.choice(DISPOSABLE_DOMAINS)}"
    elif lead.kind == "competitor":
        raw = f"{first}.{last}{number}@{rng.choice(COMPETITOR_DOMAINS)}"
    elif lead.company is None or pattern is None or taken is None or rng.random() < 0.12:
        local = rng.choice((f"{first}.{last}", f"{first}{last}", f"{first[0]}{last}"))
        raw = f"{local}{number}@{rng.choice(FREE_MAIL_DOMAINS)}"
    else:
        local = pattern(first, last)
        while local in taken:
            local = f"{local}{rng.randint(2, 9)}"
        taken.add(local)
        raw = f"{local}@{lead.company.domain}"
    if rng.random() < 0.2:  # as typed into a form: capitals, stray blanks
        raw = f" {raw.title()} "
    return normalize_email(raw)


def _marketing(ctx: _Ctx, lead: LeadRow, intent: float) -> None:
    """Where the lead came from; referrals, partners and events bring keener leads."""
    rng = ctx.rng
    if lead.kind == "spam":
        lead.source = Source.WEBSITE
        return
    lead.source = _tilted(rng, SOURCES, intent)
    campaigns = CAMPAIGNS.get(lead.source, ())
    if not campaigns or rng.random() < 0.25:
        return
    name, utm_source, utm_medium, utm_campaign, terms = rng.choice(campaigns)
    lead.campaign, lead.utm_source = name, utm_source
    lead.utm_medium, lead.utm_campaign = utm_medium, utm_campaign
    lead.utm_term = rng.choice(terms) if terms else ""
    if utm_medium in ("cpc", "paid_social"):
        lead.utm_content = rng.choice(("text_ad_a", "text_ad_b", "carousel", "video_15s"))


def _interests(ctx: _Ctx, lead: LeadRow) -> None:
    rng = ctx.rng
    if lead.kind == "spam" or rng.random() < 0.3:
        return
    size = (lead.company.employee_count if lead.company else None) or 10
    analytical = lead.department in (Department.IT, Department.ENGINEERING, Department.FINANCE)
    weights = [5.0, 3.0 if analytical else 1.5, 0.6 + 1.2 * math.log10(size)]
    slugs = [slug for slug, _, _ in PRODUCT_LINES]
    first = rng.choices(slugs, weights)[0]
    chosen = [first]
    if rng.random() < 0.2:
        chosen.append(rng.choice([s for s in slugs if s != first]))
    lead.products = [ctx.cast.products[slug] for slug in chosen]


def _custom_fields(ctx: _Ctx, lead: LeadRow) -> None:
    rng = ctx.rng
    company = lead.company
    fleet_owner = company is not None and company.industry in FLEET_INDUSTRIES
    employees = company.employee_count if company and fleet_owner else None
    if employees and rng.random() < 0.6:
        lead.custom_fields["fleet_size"] = max(1, int(employees * rng.uniform(0.02, 0.4)))
    if lead.kind in ("company", "private") and rng.random() < 0.45:
        lead.custom_fields["crm_in_use"] = rng.choices(CRM_IN_USE, (3, 5, 3, 2, 1.5, 1))[0]


# --- Activities -------------------------------------------------------------------


@dataclass(slots=True)
class Episode:
    """Activities that happen together (a browsing session, a webinar), with their
    offsets in seconds from the episode's start."""

    kind: str
    activities: list[ActivityRow]
    offsets: list[float]

    @property
    def span(self) -> float:
        return self.offsets[-1] if self.offsets else 0.0


# kind -> (base weight, intent tilt)
EPISODES: dict[str, tuple[float, float]] = {
    "browse": (40, 0.0),
    "newsletter": (26, 0.1),
    "content": (8, 0.4),
    "webinar": (5, 0.6),
    "hand_raise": (2.2, 1.5),
    "trial": (1.5, 1.0),
    "social": (5, 0.1),
    "event": (2, 0.3),
    "careers": (3, -1.2),
}


def _own_activities(ctx: _Ctx, lead: LeadRow, intent: float) -> list[Episode]:
    """The lead's own activities, drawn tilted by its latent intent, as episodes whose
    times are set once the journey is known (a hand-raise precedes the SQL move)."""
    rng = ctx.rng
    target = _activity_target(ctx, lead, intent)
    weights = dict(EPISODES)
    student = lead.seniority == Seniority.STUDENT
    bounced = lead.kind == "spam" and rng.random() < 0.5
    if bounced:
        weights["newsletter"] = (0, 0)
    if student:
        weights["careers"] = (15, -1.2)
    kinds = list(weights)
    cum: list[float] = []
    total = 0.0
    for weight, tilt in weights.values():
        total += weight * math.exp(TILT * intent * tilt)
        cum.append(total)
    episodes = [_first_episode(ctx, lead)] if lead.source not in _NO_FIRST_EPISODE else []
    count = sum(len(e.activities) for e in episodes)
    raised = False
    while count < target:
        kind = rng.choices(kinds, cum_weights=cum)[0]
        episode = _EPISODE_BUILDERS[kind](ctx, lead, intent)
        if kind == "hand_raise":
            if raised and rng.random() < 0.7:  # back on the pricing page, no new request
                _truncate(episode, 1)
            raised = True
        episodes.append(episode)
        count += len(episode.activities)
    if episodes and count > target > 0:
        _truncate(episodes[-1], len(episodes[-1].activities) - (count - target))
    if bounced:
        episodes.append(Episode("bounce", [ActivityRow(ActivityType.EMAIL_BOUNCE)], [0.0]))
    elif lead.kind != "spam" and rng.random() < sigmoid(-3.0 - 1.0 * intent):
        unsubscribe = ActivityRow(ActivityType.UNSUBSCRIBE, url=f"{SITE}/email/unsubscribe")
        episodes.append(Episode("unsubscribe", [unsubscribe], [0.0]))
    lead.activities = [a for e in episodes for a in e.activities]
    return episodes


_NO_FIRST_EPISODE = {Source.OUTBOUND, Source.IMPORT, Source.PARTNER, Source.REFERRAL}


def _activity_target(ctx: _Ctx, lead: LeadRow, intent: float) -> int:
    """How many of its own activities a lead has: heavy-tailed, more for the keen.

    Rep-logged activities add about half an activity per lead on average, and the
    first and closing episodes about one more, hence the offset.
    """
    if lead.kind == "spam":
        return ctx.rng.randint(0, 3)
    mean = max(ctx.config.activities_per_lead - 1.0, 0.5)
    draw = mean * ctx.rng.lognormvariate(-0.32, 0.8) * math.exp(0.25 * intent - 0.03)
    return max(0, round(draw))


def _truncate(episode: Episode, keep: int) -> None:
    del episode.activities[keep:]
    del episode.offsets[keep:]


def _first_episode(ctx: _Ctx, lead: LeadRow) -> Episode:
    """What made the lead: a form on the site, or a badge scanned at an event."""
    if lead.source == Source.EVENT:
        event = f"Hotlist Roadshow {lead.city}" if lead.city else "Trade fair booth"
        return Episode(
            "first", [ActivityRow(ActivityType.EVENT_ATTENDANCE, properties={"event": event})], [0]
        )
    form = ctx.rng.choice(("newsletter", "contact", "newsletter", "guide"))
    url = f"{SITE}/{form}"
    if lead.utm_source:
        url += f"?utm_source={lead.utm_source}&utm_medium={lead.utm_medium}"
    row = ActivityRow(ActivityType.FORM_SUBMISSION, url=url, properties={"form": form})
    return Episode("first", [row], [0])


def _page(ctx: _Ctx, kind: str, intent: float) -> ActivityRow:
    paths, _, tilt, seconds = PAGES[kind]
    duration = seconds * ctx.rng.lognormvariate(-0.3, 0.8) * math.exp(0.2 * intent * tilt)
    return ActivityRow(
        ActivityType.PAGE_VIEW,
        url=SITE + ctx.rng.choice(paths),
        duration_seconds=max(2, int(duration)),
    )


def _browse(ctx: _Ctx, lead: LeadRow, intent: float) -> Episode:
    """A visit of a few pages; keen leads drift to pricing, the others to the blog and jobs."""
    rng = ctx.rng
    pages = 1 + min(int(rng.expovariate(0.8)), 12)
    weights = [weight * math.exp(TILT * intent * tilt) for _, weight, tilt, _ in PAGES.values()]
    kinds = rng.choices(PAGE_KINDS, weights, k=pages)
    return _session("browse", [_page(ctx, kind, intent) for kind in kinds])


def _session(kind: str, rows: list[ActivityRow]) -> Episode:
    offsets, clock = [], 0.0
    for row in rows:
        offsets.append(clock)
        clock += (row.duration_seconds or 30) + 4
    return Episode(kind, rows, offsets)


def _careers(ctx: _Ctx, lead: LeadRow, intent: float) -> Episode:
    pages = 1 + min(int(ctx.rng.expovariate(1.0)), 4)
    return _session("careers", [_page(ctx, "careers", intent) for _ in range(pages)])


def _newsletter(ctx: _Ctx, lead: LeadRow, intent: float) -> Episode:
    rng = ctx.rng
    subject, path = rng.choice(NEWSLETTERS)
    props = {"email": subject}
    rows = [ActivityRow(ActivityType.EMAIL_OPEN, properties=props)]
    offsets = [0.0]
    if rng.random() < sigmoid(-1.3 + 1.1 * intent):
        link = f"{SITE}{path}?utm_source=hotlist&utm_medium=email&utm_campaign=newsletter"
        rows.append(ActivityRow(ActivityType.EMAIL_CLICK, url=link, properties=props))
        offsets.append(rng.uniform(5, 600))
        if rng.random() < 0.6:
            rows.append(
                ActivityRow(ActivityType.PAGE_VIEW, url=link, duration_seconds=rng.randint(10, 240))
            )
            offsets.append(offsets[-1] + 3)
    return Episode("newsletter", rows, offsets)


def _content(ctx: _Ctx, lead: LeadRow, intent: float) -> Episode:
    slug, title = ctx.rng.choice(ASSETS)
    rows = [
        ActivityRow(
            ActivityType.FORM_SUBMISSION,
            url=f"{SITE}/resources/{slug}",
            properties={"form": "content", "asset": title},
        ),
        ActivityRow(
            ActivityType.CONTENT_DOWNLOAD,
            url=f"{SITE}/downloads/{slug}.pdf",
            properties={"asset": title},
        ),
    ]
    return Episode("content", rows, [0.0, 8.0])


def _webinar(ctx: _Ctx, lead: LeadRow, intent: float) -> Episode:
    rng = ctx.rng
    slug, title = rng.choice(WEBINARS)
    props = {"webinar": title}
    url = f"{SITE}/webinars/{slug}"
    rows = [ActivityRow(ActivityType.WEBINAR_REGISTRATION, url=url, properties=props)]
    offsets = [0.0]
    if rng.random() < sigmoid(-0.2 + 1.1 * intent):
        minutes = min(60, max(3, int(rng.gauss(35 + 8 * intent, 12))))
        rows.append(
            ActivityRow(
                ActivityType.WEBINAR_ATTENDANCE,
                url=url,
                duration_seconds=minutes * 60,
                properties=props,
            )
        )
        offsets.append(rng.uniform(1, 12) * DAY)
    return Episode("webinar", rows, offsets)


def _hand_raise(ctx: _Ctx, lead: LeadRow, intent: float) -> Episode:
    """A pricing visit ending in a demo or quote request."""
    rng = ctx.rng
    pricing = _page(ctx, "pricing", intent)
    large = (lead.company.employee_count if lead.company else 0) or 0
    if large >= 200 and rng.random() < 0.5:
        request = ActivityRow(
            ActivityType.QUOTE_REQUEST,
            url=f"{SITE}/pricing/enterprise/quote",
            properties={"form": "quote", "seats": max(5, large // rng.randint(8, 30))},
        )
    else:
        request = ActivityRow(
            ActivityType.DEMO_REQUEST, url=f"{SITE}/demo", properties={"form": "demo"}
        )
    return Episode("hand_raise", [pricing, request], [0.0, (pricing.duration_seconds or 60) + 5])


def _trial(ctx: _Ctx, lead: LeadRow, intent: float) -> Episode:
    features = _page(ctx, "features", intent)
    signup = ActivityRow(
        ActivityType.TRIAL_SIGNUP, url=f"{SITE}/signup", properties={"plan": "team-trial"}
    )
    return Episode("trial", [features, signup], [0.0, (features.duration_seconds or 30) + 5])


def _social(ctx: _Ctx, lead: LeadRow, intent: float) -> Episode:
    rng = ctx.rng
    post = rng.randint(7_100_000_000_000_000_000, 7_299_999_999_999_999_999)
    row = ActivityRow(
        ActivityType.SOCIAL_ENGAGEMENT,
        url=f"https://www.linkedin.com/feed/update/urn:li:activity:{post}",
        properties={"network": "linkedin", "action": rng.choice(("like", "comment", "share"))},
    )
    return Episode("social", [row], [0.0])


def _event(ctx: _Ctx, lead: LeadRow, intent: float) -> Episode:
    event = ctx.rng.choice(("SaaS Summit", "Sales Leaders Forum", "Marketing Ops Meetup"))
    row = ActivityRow(ActivityType.EVENT_ATTENDANCE, properties={"event": event})
    return Episode("event", [row], [0.0])


_EPISODE_BUILDERS: dict[str, Callable[[_Ctx, LeadRow, float], Episode]] = {
    "browse": _browse,
    "newsletter": _newsletter,
    "content": _content,
    "webinar": _webinar,
    "hand_raise": _hand_raise,
    "trial": _trial,
    "social": _social,
    "event": _event,
    "careers": _careers,
}


# --- The funnel -------------------------------------------------------------------


@dataclass(slots=True)
class _Path:
    """Where the lead's journey has got to while it is being drawn."""

    stage: str
    at: datetime
    sql_at: datetime | None = None
    opportunity_at: datetime | None = None
    exit_at: datetime | None = None


def _journey(ctx: _Ctx, lead: LeadRow) -> _Path:
    """Walk the lead down the funnel: each step taken with logistic odds in its hidden
    fit and behaviour, and only if it would have happened before the anchor."""
    rng = ctx.rng
    lift = propensity(lead.fit(), lead.behaviour(), ctx.behaviour_scale)
    path = _Path(Stage.NEW, lead.created_at)
    if rng.random() < _early_exit_odds(lead, lift):
        reason = _early_exit_reason(lead)
        _move(
            ctx,
            lead,
            path,
            Stage.DISQUALIFIED,
            rng.expovariate(1 / 3) + 0.05,
            by=ctx.cast.marketer_id,
            reason=reason,
        )
    elif rng.random() < sigmoid(MQL_BIAS + lift) and _move(
        ctx, lead, path, Stage.MQL, rng.expovariate(1 / 4) + 0.1, reason=_mql_reason(lead)
    ):
        _from_mql(ctx, lead, path, lift)
    return path


def _early_exit_odds(lead: LeadRow, lift: float) -> float:
    if lead.kind == "spam":
        return 0.85
    if lead.kind == "competitor":
        return 0.8
    if lead.seniority == Seniority.STUDENT:
        return 0.5
    return sigmoid(-3.2 - 0.8 * lift)


def _early_exit_reason(lead: LeadRow) -> str:
    if lead.kind == "spam":
        return "Spam or fake sign-up"
    if lead.kind == "competitor":
        return "Competitor"
    if lead.seniority == Seniority.STUDENT:
        return "Student, not a buyer"
    return "Not a fit"


def _mql_reason(lead: LeadRow) -> str:
    if any(a.type in _HAND_RAISES for a in lead.activities):
        return "Asked for a demo or a quote"
    return "Reached the MQL threshold"


_HAND_RAISES = {ActivityType.DEMO_REQUEST, ActivityType.QUOTE_REQUEST, ActivityType.TRIAL_SIGNUP}


def _move(
    ctx: _Ctx,
    lead: LeadRow,
    path: _Path,
    stage: str,
    after_days: float,
    *,
    by: int | None = None,
    reason: str = "",
) -> bool:
    """Record a move ``after_days`` after the current stage began, unless that is past the
    anchor (the lead is still on its way); say whether the move happened."""
    at = _after(path.at, after_days * DAY)
    if at > ctx.now:
        return False
    lead.stage_changes.append(StageChangeRow(path.stage, stage, at, by, reason))
    path.stage, path.at = stage, at
    if stage in (Stage.CUSTOMER, Stage.DISQUALIFIED, Stage.RECYCLED):
        path.exit_at = at
    if stage == Stage.DISQUALIFIED:
        lead.disqualification_reason = reason
    return True


def _from_mql(ctx: _Ctx, lead: LeadRow, path: _Path, lift: float) -> None:
    rng = ctx.rng
    owner = _owner(ctx, lead)
    if rng.random() < sigmoid(SQL_BIAS + lift):
        if _move(
            ctx,
            lead,
            path,
            Stage.SQL,
            rng.expovariate(1 / 6) + 0.2,
            by=owner,
            reason="Accepted by sales",
        ):
            lead.owner_id = owner
            path.sql_at = path.at
            _from_sql(ctx, lead, path, lift, owner)
        return
    if rng.random() < 0.5:
        _move(
            ctx,
            lead,
            path,
            Stage.RECYCLED,
            rng.uniform(30, 75),
            reason="No engagement after nurture",
        )


def _from_sql(ctx: _Ctx, lead: LeadRow, path: _Path, lift: float, owner: int) -> None:
    rng = ctx.rng
    if rng.random() < sigmoid(OPPORTUNITY_BIAS + lift):
        if _move(
            ctx,
            lead,
            path,
            Stage.OPPORTUNITY,
            rng.expovariate(1 / 9) + 1,
            by=owner,
            reason="Qualified: budget and need confirmed",
        ):
            path.opportunity_at = path.at
            _close(ctx, lead, path, owner)
        return
    if rng.random() < 0.7:
        after = rng.expovariate(1 / 10) + 1
        if rng.random() < 0.65:
            _move(
                ctx,
                lead,
                path,
                Stage.DISQUALIFIED,
                after,
                by=owner,
                reason=rng.choice(SQL_EXIT_REASONS),
            )
        else:
            _move(
                ctx,
                lead,
                path,
                Stage.RECYCLED,
                after,
                by=owner,
                reason="Not now: revisit next quarter",
            )


def _close(ctx: _Ctx, lead: LeadRow, path: _Path, owner: int) -> None:
    """Open the deal and, if it closes before the anchor, win or lose it by the hidden
    model: logistic in fit and behaviour, plus noise."""
    rng = ctx.rng
    opened = path.at
    deal = DealRow(
        name=_deal_name(ctx, lead),
        amount=_deal_amount(ctx, lead),
        status=DealStatus.OPEN,
        created_at=opened,
        closed_at=None,
    )
    lead.deals.append(deal)
    noise = rng.gauss(0, WIN_NOISE)
    won = rng.random() < sigmoid(win_odds(lead.fit(), lead.behaviour(), noise, ctx.behaviour_scale))
    after = rng.expovariate(1 / 20) + 5
    reason = rng.choice(LOST_REASONS)
    recycle = reason in ("No decision", "Budget frozen") or rng.random() < 0.3
    if won:
        moved = _move(ctx, lead, path, Stage.CUSTOMER, after, by=owner, reason="Contract signed")
    elif recycle:
        moved = _move(
            ctx, lead, path, Stage.RECYCLED, after, by=owner, reason=f"Deal lost: {reason}"
        )
    else:
        moved = _move(
            ctx, lead, path, Stage.DISQUALIFIED, after, by=owner, reason=f"Deal lost: {reason}"
        )
    if moved:
        deal.status = DealStatus.WON if won else DealStatus.LOST
        deal.closed_at = path.at
        deal.lost_reason = "" if won else reason


def _owner(ctx: _Ctx, lead: LeadRow) -> int:
    """The rep whose territory holds the lead's country, or any rep."""
    reps = ctx.cast.reps
    local = [rep for rep in reps if lead.country in rep.countries]
    return ctx.rng.choice(local or reps).id


def _product_slug(ctx: _Ctx, lead: LeadRow) -> str:
    by_id = {pk: slug for slug, pk in ctx.cast.products.items()}
    return by_id[lead.products[0]] if lead.products else PRODUCT_LINES[0][0]


def _deal_name(ctx: _Ctx, lead: LeadRow) -> str:
    slug = _product_slug(ctx, lead)
    product = next(name for s, name, _ in PRODUCT_LINES if s == slug)
    buyer = lead.company.name if lead.company else f"{lead.first_name} {lead.last_name}"
    return f"{buyer}: {product}"


def _deal_amount(ctx: _Ctx, lead: LeadRow) -> Decimal:
    slug = _product_slug(ctx, lead)
    base = next(amount for s, _, amount in PRODUCT_LINES if s == slug)
    size = (lead.company.employee_count if lead.company else None) or 10
    amount = base * (size / 50) ** 0.35 * ctx.rng.lognormvariate(0, 0.35)
    return Decimal(max(500, round(amount / 500) * 500))


# --- Sales work: rep activities, tasks, notes --------------------------------------


def _follow_up(ctx: _Ctx, lead: LeadRow, path: _Path) -> None:
    """What the owner did with the lead from SQL on: calls, meetings, notes and tasks."""
    if path.sql_at is None or lead.owner_id is None:
        return
    rng = ctx.rng
    owner = lead.owner_id
    end = path.exit_at or ctx.now
    start = path.sql_at
    first_call = _between(ctx, start, _after(start, rng.uniform(0.5, 48) * HOUR), end)
    _call(ctx, lead, first_call, connected=True)
    lead.tasks.append(
        TaskRow(
            owner,
            f"Intro call with {lead.first_name or 'the lead'}",
            TaskKind.CALL,
            first_call,
            first_call,
            start,
        )
    )
    for _ in range(min(int(rng.expovariate(1 / 1.5)), 6)):
        _call(ctx, lead, _uniform_time(ctx, start, end), connected=rng.random() < 0.5)
    if rng.random() < 0.6:
        lead.activities.append(
            ActivityRow(
                ActivityType.EMAIL_REPLY,
                created_by_id=owner,
                properties={"subject": "Re: Hotlist for your team"},
                occurred_at=_uniform_time(ctx, start, end),
            )
        )
    _note(
        ctx, lead, min(_after(first_call, rng.uniform(5, 40) * 60), end), _qualification_note(lead)
    )
    if path.opportunity_at:
        _opportunity_work(ctx, lead, path, end)
    _open_task(ctx, lead, path)


def _opportunity_work(ctx: _Ctx, lead: LeadRow, path: _Path, end: datetime) -> None:
    rng = ctx.rng
    opened = path.opportunity_at
    owner = lead.owner_id
    assert opened is not None
    assert path.sql_at is not None
    assert owner is not None
    discovery = _between(ctx, path.sql_at, _after(opened, -rng.uniform(2, 72) * HOUR), opened)
    _meeting(ctx, lead, discovery, "Discovery call", 45)
    demo = _after(opened, rng.uniform(1, 8) * DAY)
    if demo <= end:
        _meeting(ctx, lead, demo, "Product demo", 60)
    deal = lead.deals[0]
    if deal.status == DealStatus.WON:
        assert deal.closed_at is not None
        _note(ctx, lead, deal.closed_at, f"Signed {deal.name} for {deal.amount:,.0f} EUR.")
        kickoff = _after(deal.closed_at, rng.uniform(2, 10) * DAY)
        done = kickoff if kickoff <= ctx.now else None
        if done:
            _meeting(ctx, lead, kickoff, "Kick-off", 60)
        title = f"Kick-off with {deal.name.rpartition(': ')[0]}"
        lead.tasks.append(TaskRow(owner, title, TaskKind.MEETING, kickoff, done, deal.closed_at))
    elif deal.status == DealStatus.LOST:
        assert deal.closed_at is not None
        _note(ctx, lead, deal.closed_at, f"Lost: {deal.lost_reason}.")


def _open_task(ctx: _Ctx, lead: LeadRow, path: _Path) -> None:
    rng = ctx.rng
    name = lead.first_name or "the lead"
    if path.stage == Stage.SQL:
        title, kind = f"Call {name} to qualify", TaskKind.CALL
    elif path.stage == Stage.OPPORTUNITY:
        title, kind = rng.choice(
            (
                (f"Send the proposal to {name}", TaskKind.EMAIL),
                (f"Follow up on the demo with {name}", TaskKind.FOLLOW_UP),
            )
        )
    elif path.stage == Stage.RECYCLED:
        title, kind = f"Check back with {name}", TaskKind.FOLLOW_UP
        due = _after(path.at, rng.uniform(60, 120) * DAY)
        lead.tasks.append(TaskRow(lead.owner_id or 0, title, kind, due, None, path.at))
        return
    else:
        return
    created = max(path.at, _after(ctx.now, -rng.uniform(0, 6) * DAY))
    due = _after(ctx.now, rng.uniform(-5, 10) * DAY)
    lead.tasks.append(TaskRow(lead.owner_id or 0, title, kind, due, None, created))


def _call(ctx: _Ctx, lead: LeadRow, at: datetime, *, connected: bool) -> None:
    rng = ctx.rng
    outcome = "connected" if connected else rng.choice(("voicemail", "no answer"))
    lead.activities.append(
        ActivityRow(
            ActivityType.CALL,
            duration_seconds=rng.randint(180, 1800) if connected else rng.randint(10, 60),
            properties={"outcome": outcome},
            created_by_id=lead.owner_id,
            occurred_at=at,
        )
    )


def _meeting(ctx: _Ctx, lead: LeadRow, at: datetime, title: str, minutes: int) -> None:
    lead.activities.append(
        ActivityRow(
            ActivityType.MEETING,
            duration_seconds=minutes * 60,
            properties={"title": title},
            created_by_id=lead.owner_id,
            occurred_at=at,
        )
    )


def _note(ctx: _Ctx, lead: LeadRow, at: datetime, body: str) -> None:
    """A rep's note, and its line on the lead's timeline."""
    lead.notes.append(NoteRow(lead.owner_id, body, at))
    lead.activities.append(
        ActivityRow(
            ActivityType.NOTE,
            properties={"text": body[:200]},
            created_by_id=lead.owner_id,
            occurred_at=at,
        )
    )


def _qualification_note(lead: LeadRow) -> str:
    parts = [f"Spoke with {lead.first_name or 'the lead'}"]
    if lead.job_title:
        parts[0] += f" ({lead.job_title})"
    if lead.budget:
        parts.append(f"budget {Budget(lead.budget).label.lower()}")
    if lead.timeline:
        parts.append(f"timeline: {Timeline(lead.timeline).label.lower()}")
    crm = lead.custom_fields.get("crm_in_use")
    if crm:
        parts.append(f"uses {crm} today")
    return "; ".join(parts) + "."


def _uniform_time(ctx: _Ctx, start: datetime, end: datetime) -> datetime:
    span = max((end - start).total_seconds(), 0)
    return _after(start, ctx.rng.uniform(0, span))


def _between(ctx: _Ctx, low: datetime, wanted: datetime, high: datetime) -> datetime:
    return min(max(wanted, low), high, ctx.now)


def _after(moment: datetime, seconds: float) -> datetime:
    """``moment`` moved by whole seconds, so every time stays on the anchor's grid."""
    return moment + timedelta(seconds=int(seconds))


# --- Times and bookkeeping --------------------------------------------------------


def _episode_times(ctx: _Ctx, lead: LeadRow, path: _Path, episodes: list[Episode]) -> None:
    """Spread the lead's own episodes over its life: the first at creation, a hand-raise
    just before sales accepted it, unsubscribing after the last newsletter, nothing of
    a customer's or a lost lead's shopping after its deal closed."""
    rng = ctx.rng
    start = lead.created_at
    end = path.exit_at if path.exit_at and lead.deals else ctx.now
    span = max((end - start).total_seconds(), 0.0)
    starts: dict[int, float] = {}
    hand_raise_done = False
    for index, episode in enumerate(episodes):
        latest = max(span - episode.span, 0.0)
        if episode.kind == "first":
            starts[index] = 0.0
        elif episode.kind == "hand_raise" and path.sql_at and not hand_raise_done:
            before = (path.sql_at - start).total_seconds() - rng.uniform(HOUR, 3 * DAY)
            starts[index] = min(max(before, 0.0), latest)
            hand_raise_done = True
        elif episode.kind == "unsubscribe":
            continue
        else:
            starts[index] = rng.uniform(0, latest)
    mails = [s + episodes[i].span for i, s in starts.items() if episodes[i].kind == "newsletter"]
    for index, episode in enumerate(episodes):
        if episode.kind == "unsubscribe":
            after = max(mails, default=rng.uniform(0, span)) + rng.uniform(60, 2 * DAY)
            starts[index] = min(after, span)
    for index, episode in enumerate(episodes):
        base = _after(start, starts[index])
        for row, offset in zip(episode.activities, episode.offsets, strict=True):
            row.occurred_at = min(_after(base, offset), ctx.now)


def _finish(ctx: _Ctx, lead: LeadRow) -> None:
    """Sort the activities, key them, and derive the lead's summary fields from them."""
    activities = lead.activities
    activities.sort(key=_occurred)
    prefix = f"{ctx.config.seed}:{lead.serial}:"
    for n, activity in enumerate(activities):
        activity.lead = lead
        activity.idempotency_key = prefix + str(n)
        assert activity.occurred_at is not None
        activity.received_at = activity.occurred_at + RECEIVE_DELAY
    if activities:
        lead.first_activity_at = activities[0].occurred_at
        lead.last_activity_at = activities[-1].occurred_at
    kinds = {a.type for a in activities}
    if ActivityType.EMAIL_BOUNCE in kinds:
        lead.email_status = EmailStatus.BOUNCED
    elif ActivityType.UNSUBSCRIBE in kinds:
        lead.email_status = EmailStatus.UNSUBSCRIBED
    lead.stage = lead.stage_changes[-1].to_stage if lead.stage_changes else Stage.NEW
    lead.stage_changed_at = lead.stage_changes[-1].at if lead.stage_changes else lead.created_at
    changes = [(change.from_stage, change.to_stage) for change in lead.stage_changes]
    lead.furthest_step = furthest_step_of(lead.stage, changes)
    lead.deal_outcome = DealOutcome.of(deal.status for deal in lead.deals)
    for row in (*lead.stage_changes, *lead.deals, *lead.tasks, *lead.notes):
        row.lead = lead


def _occurred(activity: ActivityRow) -> datetime:
    assert activity.occurred_at is not None
    return activity.occurred_at


# --- Writing ----------------------------------------------------------------------

Row = Any


@dataclass(frozen=True, slots=True)
class Column:
    """How one model column is filled from a generated row."""

    attname: str
    column: str
    read: Callable[[Row], Any]
    copy_text: Callable[[Any], str]
    on_row: bool  # False: the model's default (or the wall clock for auto_now)


_COLUMNS: dict[tuple[type[models.Model], type], list[Column]] = {}


def columns_for(model: type[models.Model], row_type: type) -> list[Column]:
    """The model's concrete columns but the primary key, read off ``row_type`` rows by
    attribute name where the row has one."""
    key = (model, row_type)
    if key not in _COLUMNS:
        _COLUMNS[key] = [
            _column(f, row_type) for f in model._meta.concrete_fields if not f.primary_key
        ]
    return _COLUMNS[key]


def _column(f: models.Field[Any, Any], row_type: type) -> Column:
    read: Callable[[Row], Any]
    on_row = hasattr(row_type, f.attname)
    if on_row:
        read = attrgetter(f.attname)
    elif getattr(f, "auto_now", False) or getattr(f, "auto_now_add", False):
        read = _wall_clock
    else:
        read = _constant(f.get_default())
    return Column(f.attname, f.column, read, _copy_text_for(f), on_row)


def _wall_clock(row: Row) -> datetime:
    return timezone.now()


def _constant(value: Any) -> Callable[[Row], Any]:
    return lambda row: value


class BulkWriter:
    """Rows through ``bulk_create`` in batches: any database."""

    def __init__(self, batch_size: int) -> None:
        self.batch_size = batch_size

    def insert(self, model: type[models.Model], rows: Sequence[Row], *, with_ids: bool) -> None:
        if not rows:
            return
        columns = [c for c in columns_for(model, type(rows[0])) if c.on_row]
        objs = [model(**{c.attname: c.read(row) for c in columns}) for row in rows]
        model._default_manager.bulk_create(objs, batch_size=self.batch_size)
        if with_ids:
            for row, obj in zip(rows, objs, strict=True):
                row.id = obj.pk


class CopyWriter:
    """Rows through PostgreSQL's ``COPY ... FROM STDIN``, one text buffer per table and
    chunk. Ids that other rows point at are drawn from the table's sequence first.

    Django's foreign keys are ``DEFERRABLE INITIALLY DEFERRED``: inside one long
    transaction every copied row would queue its checks until commit, millions of
    them. Checking them at the end of each COPY keeps the server's memory bounded;
    the setting lasts until the surrounding transaction ends.
    """

    def __init__(self) -> None:
        self.cursor = connection.cursor()
        self.cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")

    def insert(self, model: type[models.Model], rows: Sequence[Row], *, with_ids: bool) -> None:
        if not rows:
            return
        columns = columns_for(model, type(rows[0]))
        names = [c.column for c in columns]
        cells = [(c.read, c.copy_text) for c in columns]
        prefix: Callable[[Row], str] = _no_prefix
        if with_ids:
            for row, pk in zip(rows, self._reserve_ids(model, len(rows)), strict=True):
                row.id = pk
            names.insert(0, model._meta.pk.column)
            prefix = _id_prefix
        buffer = io.StringIO()
        write = buffer.write
        for row in rows:
            write(prefix(row) + "\t".join([text(read(row)) for read, text in cells]) + "\n")
        buffer.seek(0)
        quote = connection.ops.quote_name
        sql = (
            f"COPY {quote(model._meta.db_table)} ({', '.join(quote(n) for n in names)}) FROM STDIN"
        )
        self.cursor.cursor.copy_expert(sql, buffer)

    def _reserve_ids(self, model: type[models.Model], count: int) -> list[int]:
        self.cursor.execute(
            "SELECT nextval(pg_get_serial_sequence(%s, %s)) FROM generate_series(1, %s)",
            [model._meta.db_table, model._meta.pk.column, count],
        )
        return [pk for (pk,) in self.cursor.fetchall()]


def _no_prefix(row: Row) -> str:
    return ""


def _id_prefix(row: Row) -> str:
    return f"{row.id}\t"


_COPY_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})


def _copy_escape(value: Any) -> str:
    return "\\N" if value is None else str(value).translate(_COPY_ESCAPES)


def _copy_json(value: Any) -> str:
    if value == {}:  # most page views
        return "{}"
    return json.dumps(value, ensure_ascii=False).translate(_COPY_ESCAPES)


def _copy_datetime(value: datetime | None) -> str:
    return "\\N" if value is None else value.isoformat()


def _copy_plain(value: Any) -> str:
    return "\\N" if value is None else str(value)


def _copy_bool(value: bool | None) -> str:
    return "\\N" if value is None else ("t" if value else "f")


def _copy_text_for(f: models.Field[Any, Any]) -> Callable[[Any], str]:
    """COPY's text format for a field: \\N for NULL, blanks and backslashes escaped."""
    if isinstance(f, models.JSONField):
        return _copy_json
    if isinstance(f, models.DateTimeField):
        return _copy_datetime
    if isinstance(f, models.BooleanField):
        return _copy_bool
    if isinstance(f, models.IntegerField | models.FloatField | models.DecimalField):
        return _copy_plain
    if isinstance(f, models.ForeignKey):
        return _copy_plain
    return _copy_escape


def write_groups(groups: Sequence[LeadBundle], writer: BulkWriter | CopyWriter) -> None:
    """Write a chunk of groups: companies and leads first (their ids are needed), then
    everything that points at a lead."""
    companies = [g.company for g in groups if g.company is not None]
    writer.insert(Company, companies, with_ids=True)
    leads = [lead for g in groups for lead in g.leads]
    written_at = timezone.now()
    for lead in leads:
        lead.updated_at = written_at
    writer.insert(Lead, leads, with_ids=True)
    interests = [InterestRow(lead, pk) for lead in leads for pk in lead.products]
    writer.insert(Lead.product_interests.through, interests, with_ids=False)
    for model, attribute in (
        (Activity, "activities"),
        (StageChange, "stage_changes"),
        (Deal, "deals"),
        (Task, "tasks"),
        (Note, "notes"),
    ):
        rows = [row for lead in leads for row in getattr(lead, attribute)]
        writer.insert(model, rows, with_ids=False)


# --- The whole run ----------------------------------------------------------------


@dataclass
class DemoSummary:
    companies: int = 0
    leads: int = 0
    activities: int = 0
    deals: Counter[str] = field(default_factory=Counter)
    stages: Counter[str] = field(default_factory=Counter)
    used_copy: bool = False
    seconds: float = 0.0

    def add(self, group: LeadBundle) -> None:
        self.companies += group.company is not None
        for lead in group.leads:
            self.leads += 1
            self.activities += len(lead.activities)
            self.stages[lead.stage] += 1
            self.deals.update(deal.status for deal in lead.deals)


def demo_seed(
    *,
    leads: int = DEFAULT_LEADS,
    seed: int = DEFAULT_SEED,
    now: datetime | None = None,
    activities_per_lead: float = DEFAULT_ACTIVITIES_PER_LEAD,
    batch_size: int = DEFAULT_BATCH_SIZE,
    copy: bool | None = None,
) -> DemoSummary:
    """Create the demo cast and write a world of ``leads`` leads, in one transaction.

    ``now`` anchors every time (default: the start of today, UTC). ``copy`` forces
    (True) or forbids (False) PostgreSQL COPY; by default COPY is used on PostgreSQL
    from ``COPY_THRESHOLD`` leads on. Raises ``DemoWorldExists`` when there are leads
    already, and ``ValueError`` for COPY on another database.
    """
    on_postgres = connection.vendor == "postgresql"
    if copy and not on_postgres:
        raise ValueError("COPY needs PostgreSQL.")
    use_copy = copy if copy is not None else on_postgres and leads >= COPY_THRESHOLD
    config = DemoConfig(
        leads=leads,
        seed=seed,
        now=now or day_start(timezone.now()),
        activities_per_lead=activities_per_lead,
        batch_size=max(1, batch_size),
    )
    started = timezone.now()
    summary = DemoSummary(used_copy=use_copy)
    with transaction.atomic():
        if Lead.objects.exists():
            raise DemoWorldExists("The database has leads already.")
        cast = demo_cast_ensure()
        writer = CopyWriter() if use_copy else BulkWriter(config.batch_size)
        for chunk in chunked_groups(generate_world(config, cast), config.batch_size):
            write_groups(chunk, writer)
            for group in chunk:
                summary.add(group)
            reset_queries()  # with DEBUG on, Django keeps every INSERT's SQL otherwise
    summary.seconds = (timezone.now() - started).total_seconds()
    return summary


def chunked_groups(
    groups: Iterable[LeadBundle], leads_per_chunk: int
) -> Iterator[list[LeadBundle]]:
    """Whole groups, about ``leads_per_chunk`` leads at a time."""
    chunk: list[LeadBundle] = []
    size = 0
    for group in groups:
        chunk.append(group)
        size += len(group.leads)
        if size >= leads_per_chunk:
            yield chunk
            chunk, size = [], 0
    if chunk:
        yield chunk


def parse_anchor(value: str | datetime) -> datetime:
    """An ISO date or datetime as an aware datetime; naive values are taken as UTC."""
    moment = value if isinstance(value, datetime) else datetime.fromisoformat(value)
    return moment if timezone.is_aware(moment) else moment.replace(tzinfo=UTC)

"""What the demo world's leads are and do: industries, company sizes, job titles, product
lines, sources and campaigns, the site's pages and content, and why deals are lost."""

from __future__ import annotations

from dataclasses import dataclass

from leads.models import (
    Department,
    Industry,
    Seniority,
    Source,
)


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

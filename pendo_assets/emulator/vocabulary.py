"""Fixed word lists the generators draw from (names, user agents, places, tag names)."""

from __future__ import annotations

ACCOUNT_NAMES = (
    "Zürich Café GmbH",
    "株式会社テスト",
    "Acme Corp",
    "Epsilon united",
    "Globex",
    "Initech",
    "Umbrella Health",
    "Ølstad Shipping AS",
    "São Paulo Tecnologia Ltda",
    "Łódź Software sp. z o.o.",
    "Café Müller & Söhne",
    "Hooli",
    "Stark Industries",
    "Wayne Enterprises",
    "Soylent",
    "Cyberdyne Systems",
    "北京数据有限公司",
    "Tyrell Corp",
    "Massive Dynamic",
    "Björk & Co",
)
ACCOUNT_SUFFIXES = ("", " Inc.", " Ltd", " SA", " (EU)", " Holdings")
INDUSTRIES = ("Software", "Finance", "Healthcare", "Retail", "Manufacturing", "Education")
PLANS = ("free", "starter", "pro", "enterprise")
REGIONS_CUSTOM = ("NA", "EMEA", "APAC", "LATAM")

FIRST_NAMES = ("ana", "bob", "chloé", "dmitri", "eve", "fatima", "george", "hana", "ivan", "jürgen")
LAST_NAMES = ("smith", "garcía", "müller", "tanaka", "okafor", "novak", "rossi", "lee", "kim")
EMAIL_DOMAINS = ("example.com", "acme.test", "mail.example.org", "globex.test")
LANGUAGES = ("en_US", "en_GB", "de_DE", "ja_JP", "es_419", "pt_BR", "fr_FR")
ROLES = ("admin", "editor", "viewer", "billing")

USER_AGENTS = (
    (
        "Chrome",
        "120.0.6099",
        "Windows",
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
        "Chrome/120.0.6099.130 Safari/537.36",
    ),
    (
        "Chrome",
        "121.0.6167",
        "Mac OS X",
        "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) "
        "Chrome/121.0.6167.85 Safari/537.36",
    ),
    (
        "Firefox",
        "122.0",
        "Linux",
        "Mozilla/5.0 (X11; Ubuntu; Linux x86_64; rv:122.0) Gecko/20100101 Firefox/122.0",
    ),
    (
        "Safari",
        "17.2",
        "Mac OS X",
        "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_2) AppleWebKit/605.1.15 (KHTML, like Gecko) "
        "Version/17.2 Safari/605.1.15",
    ),
    (
        "Edge",
        "120.0.2210",
        "Windows",
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
        "Chrome/120.0.0.0 Safari/537.36 Edg/120.0.2210.91",
    ),
)
MOBILE_USER_AGENTS = (
    (
        "Safari",
        "17.1",
        "iOS",
        "Mozilla/5.0 (iPhone; CPU iPhone OS 17_1 like Mac OS X) AppleWebKit/605.1.15 "
        "(KHTML, like Gecko) Version/17.1 Mobile/15E148 Safari/604.1",
    ),
    (
        "Chrome",
        "120.0.6099",
        "Android",
        "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) "
        "Chrome/120.0.6099.144 Mobile Safari/537.36",
    ),
    (
        "Firefox",
        "48.0",
        "KaiOS",
        "Mozilla/5.0 (Mobile; LYF/F90M/LYF_F90M_000-03-06-290818; Android; rv:48.0) "
        "Gecko/48.0 Firefox/48.0 KAIOS/2.5",
    ),
)

# (country, region, latitude, longitude)
PLACES = (
    ("US", "NY", 40.7128, -74.006),
    ("US", "CA", 37.7749, -122.4194),
    ("DE", "BE", 52.52, 13.405),
    ("CH", "ZH", 47.3769, 8.5417),
    ("JP", "13", 35.6762, 139.6503),
    ("BR", "SP", -23.5505, -46.6333),
    ("GB", "ENG", 51.5072, -0.1276),
    ("IN", "KA", 12.9716, 77.5946),
)

PRODUCT_AREAS = ("Dashboard", "Reports", "Billing", "Settings", "Onboarding", "Integrations")
PAGE_NAMES = (
    "Home",
    "Revenue/Sessions Home",
    "Report Details",
    "Invoice List",
    "Invoice Detail",
    "User Settings",
    "Team Members",
    "Integrations Marketplace",
    "Search Results",
    "Extras - 500",
    "Onboarding Checklist",
    "Billing Overview",
)
FEATURE_NAMES = (
    "Form Upload Tab",
    "Generate PDF of Invoice",
    "Date Selection",
    "Menu Toggle Open/Closed",
    "Export CSV",
    "Share Report",
    "Add Filter",
    "Save View",
    "Invite User",
    "Help Button",
)
TRACK_TYPE_NAMES = (
    "Report Exported",
    "Invoice Paid",
    "File Uploaded",
    "Signup Completed",
    "Search Performed",
    "Integration Connected",
)
GUIDE_NAMES = (
    "NPS Survey",
    "Welcome Tour",
    "New Feature: Saved Views",
    "Billing Update Banner",
    "Feedback Poll",
    "Onboarding Checklist",
    "Maintenance Notice",
)
PAGE_PATHS = ("/", "/home", "/reports", "/reports/{id}", "/billing", "/settings", "/search")
TAG_COLORS = ("gray", "blue", "green", "orange", "purple")
USERS = (
    ("5629499534213120", "admin@example.com", "Ada", "Admin", 8),
    ("6192449487634432", "pm@example.com", "Pat", "Product", 1),
    ("4785074604081152", "cs@example.com", "Chris", "Success", 1),
)
PAGE_PARAMETERS = (
    {"tab": "overview"},
    {"tab": "details"},
    {"q": "invoice 2026"},
    {"sort": "desc", "page": "2"},
)
TRACK_PROPERTIES = (
    {},
    {"format": "csv"},
    {"format": "pdf", "rows": 120},
    {"plan": "pro", "source": "button"},
    {"integration": "salesforce"},
)
FREE_TEXT_ANSWERS = (
    "Great product!",
    "Too slow when exporting",
    "Ich liebe die neuen Berichte",
    "もっと速くしてほしい",
    "",
    "Please add dark mode 🙏",
)

# Poll questions, shaped like Pendo's guide polls (question text, type, choices).
NPS_QUESTION = "How likely are you to recommend Acme Cloud to a friend or colleague?"
NPS_FOLLOW_UP = "What is the main reason for your score?"
FREE_TEXT_QUESTION = "What could we do to make this page more useful?"
STEP_NAMES = ("Welcome", "Where to start", "Try it yourself", "You're all set")

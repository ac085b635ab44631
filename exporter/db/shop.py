"""What the reference shop sells and how: its cities, payment methods and failures, webhook
errors and the shape of its sales over the day and the week.

The seeder and the demo's live sales share these. A leaf, importing nothing: the demo's
scenario list, which the command line reads at start, needs them without psycopg.
"""

SELLER_TIMEZONE = "America/New_York"

# A workshop touring US cities, with two European dates.
_US_CITIES = (
    *("Atlanta", "Austin", "Chicago", "Dallas", "Denver", "Houston", "Los Angeles"),
    *("Miami", "Nashville", "New York", "Philadelphia", "Phoenix", "Seattle"),
)
CITIES: tuple[tuple[str, str], ...] = (  # (city, currency)
    *((city, "usd") for city in _US_CITIES),
    ("London", "gbp"),
    ("Berlin", "eur"),
)

# Stripe error codes of failed card payments, roughly by how often they occur.
FAILURE_CODES: tuple[tuple[str, float], ...] = (
    ("card_declined", 0.45),
    ("insufficient_funds", 0.18),
    ("expired_card", 0.10),
    ("incorrect_cvc", 0.10),
    ("processing_error", 0.06),
    ("authentication_required", 0.06),
    ("incorrect_number", 0.04),
    ("card_decline_rate_limit_exceeded", 0.01),
)
PAYMENT_METHODS: tuple[tuple[str, float], ...] = (
    ("card", 0.80),
    ("link", 0.10),
    ("klarna", 0.05),
    ("cashapp", 0.03),
    ("us_bank_account", 0.02),
)
WEBHOOK_ERRORS = (
    "No signatures found matching the expected signature for payload",
    "canceling statement due to statement timeout",
    "deadlock detected",
    "upstream request timed out",
)
FAILED_SHARE = 0.04
REFUNDED_SHARE = 0.02
PARTIAL_REFUND_SHARE = 0.005
ABANDONED_SHARE = 0.12

# Relative sales by local hour (night quiet, lunch and evening peaks) and weekday (Mon..Sun).
HOURLY: tuple[float, ...] = (
    *(0.15, 0.08, 0.05, 0.04, 0.05, 0.1),  # 00:00-05:59
    *(0.25, 0.5, 0.8, 1.0, 1.1, 1.3),  # 06:00-11:59
    *(1.6, 1.5, 1.1, 1.0, 1.0, 1.2),  # 12:00-17:59
    *(1.7, 1.9, 1.8, 1.4, 0.9, 0.45),  # 18:00-23:59
)
WEEKDAY = (0.9, 1.1, 1.15, 1.2, 0.95, 0.8, 1.05)

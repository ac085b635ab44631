"""The bridge's own metrics, on a registry it is given."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter

REJECT_REASONS = (
    "unauthorized",
    "unknown_group",
    "too_large",
    "length_required",
    "malformed",
    "schema",
    "method",
)
FAILURE_REASONS = (
    "rate_limited",
    "twilio_unavailable",
    "timeout",
    "connection",
    "auth",
    "twilio_refused",
    "decode",
    "rejected",
    "store",
    "in_flight",
)


class BridgeMetrics:
    """Counters of webhooks and messages; every series exists from the start at 0."""

    def __init__(self, registry: CollectorRegistry) -> None:
        prefix = "boxoffice_sms_bridge"
        self.received = Counter(
            f"{prefix}_notifications_received",
            "Webhooks accepted (authenticated, valid, known group).",
            registry=registry,
        )
        self.rejected = Counter(
            f"{prefix}_requests_rejected",
            "Webhooks refused with a 4xx, by reason; nothing was sent for them.",
            ["reason"],
            registry=registry,
        )
        self.sent = Counter(
            f"{prefix}_messages_sent",
            "SMS accepted by Twilio.",
            registry=registry,
        )
        self.segments = Counter(
            f"{prefix}_message_segments_sent",
            "SMS segments accepted by Twilio (what Twilio bills).",
            registry=registry,
        )
        self.dry_run = Counter(
            f"{prefix}_messages_dry_run",
            "SMS logged instead of sent (dry run).",
            registry=registry,
        )
        self.deduplicated = Counter(
            f"{prefix}_messages_deduplicated",
            "SMS not sent because this notification already went to this recipient.",
            registry=registry,
        )
        self.deferred = Counter(
            f"{prefix}_messages_deferred",
            "SMS held because their recipient was over its rate limit; they go out "
            "coalesced into one digest SMS per recipient.",
            registry=registry,
        )
        self.digests = Counter(
            f"{prefix}_digests_sent",
            "Digest SMS sent, each carrying every deferred message of one recipient.",
            registry=registry,
        )
        self.failed = Counter(
            f"{prefix}_messages_failed",
            "SMS attempts that failed, by reason; 'rejected' ones are never retried, the "
            "others make the webhook answer 503 so Alertmanager retries.",
            ["reason"],
            registry=registry,
        )
        self.retries = Counter(
            f"{prefix}_send_retries",
            "Twilio requests repeated within a webhook's deadline (429, 5xx, timeouts).",
            registry=registry,
        )
        self.possible_duplicates = Counter(
            f"{prefix}_possible_duplicates",
            "Sends repeated after Twilio may already have accepted the message (a read "
            "timeout, or the claim of a bridge that died mid-send): each may be a duplicate.",
            registry=registry,
        )
        for reason in REJECT_REASONS:
            self.rejected.labels(reason)
        for reason in FAILURE_REASONS:
            self.failed.labels(reason)

"""The typed schema of boxoffice.yml. Field docs feed the configuration reference."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal
from urllib.parse import urlsplit

from exporter.config.listen import listen_address_problem
from exporter.config.typed import Check, Duration, at_least, field, positive


def _path(value: str) -> str | None:
    if not value.startswith("/"):
        return f"must start with '/', got {value!r}"
    if value == "/":
        return "must not be '/', which serves the landing page"
    if value.rstrip("/") == "/healthz":
        return "must not be '/healthz', which serves the health check"
    if value.rstrip("/") == "/status":
        return "must not be '/status', which serves the status page"
    if not _URL_PATH.fullmatch(value):
        return f"may only hold letters, digits and -._~/ characters, got {value!r}"
    return None


_URL_PATH = re.compile(r"[A-Za-z0-9._~/-]+")
_HEADER_NAME = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")  # RFC 9110 token


def _headers(headers: dict[str, str]) -> str | None:
    for name, value in headers.items():
        if not _HEADER_NAME.fullmatch(name):
            return f"{name!r} is not a valid header name"
        if any((ord(c) < 0x20 and c != "\t") or ord(c) == 0x7F for c in value):
            return f"{name}: must not contain control characters (CR, LF, …)"
    return None


@dataclass(frozen=True, kw_only=True)
class WebSettings:
    """The exporter's HTTP endpoint."""

    listen_address: str = field(
        ":9798", doc="Address to serve /metrics, /healthz and / on.", check=listen_address_problem
    )
    config_file: str | None = field(
        None,
        doc="exporter-toolkit web config file: basic_auth_users (bcrypt) and tls_server_config.",
    )
    telemetry_path: str = field("/metrics", doc="Path of the metrics endpoint.", check=_path)


def _service_url(value: str) -> str | None:
    """A Prometheus or Alertmanager base URL: http(s), a host, no credentials, query or fragment."""
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 (raises ValueError on a port that is not a number)
    except ValueError as exc:
        return f"is not a valid URL ({exc}), got {value!r}"
    if parts.scheme not in ("http", "https"):
        return f"must be an http(s) URL, got {value!r}"
    if not parts.hostname:
        return f"must name a host, got {value!r}"
    if parts.username is not None or parts.password is not None:
        return "must not hold credentials (user:password@); put the proxy's auth elsewhere"
    if parts.query or parts.fragment or any(c.isspace() or ord(c) < 0x20 for c in value):
        return f"must be a base URL without query, fragment or spaces, got {value!r}"
    return None


@dataclass(frozen=True, kw_only=True)
class StatusPageSettings:
    """The owner's status page at /status (docs/status-page.md)."""

    enabled: bool = field(True, doc="Serve /status, behind the same web config as /metrics.")
    prometheus_url: str | None = field(
        None,
        doc="Prometheus the page reads today's and the last hour's sales from (HTTP API); "
        "unset: those figures show as not configured.",
        check=_service_url,
    )
    alertmanager_url: str | None = field(
        None,
        doc="Alertmanager the page reads the firing alerts from (API v2); unset: not shown.",
        check=_service_url,
    )
    timeout: Duration = field(
        Duration(3), doc="Give up on Prometheus or Alertmanager after this long.", check=positive
    )
    refresh: Duration = field(
        Duration(30), doc="The page reloads itself this often.", check=at_least(5)
    )


@dataclass(frozen=True, kw_only=True)
class DatabaseSettings:
    """One named PostgreSQL database (the ticket DB and the payment DB may differ)."""

    dsn: str | None = field(
        None, doc="libpq URI or key=value string; prefer dsn_file.", secret=True
    )
    dsn_file: str | None = field(None, doc="File holding the DSN (Docker/Kubernetes secrets).")
    pool_max_size: int = field(
        2, doc="Most connections the exporter opens to this database.", check=at_least(1)
    )
    connect_timeout: Duration = field(
        Duration(5), doc="Give up connecting after this long.", check=positive
    )


@dataclass(frozen=True, kw_only=True)
class IncrementalSettings:
    """Incremental collection of the default pack's counters (docs/incremental.md)."""

    enabled: bool = field(
        True,
        doc=(
            "Read only rows changed since the last cycle for the counters and inventory of "
            "the default pack (metrics with their own SQL always run it in full)."
        ),
    )
    overlap: Duration = field(
        Duration(120),
        doc="Recount rows this recent each cycle, so transactions committing late still count.",
        check=positive,
    )
    track_for: Duration = field(
        Duration(30 * 86400),
        doc=(
            "How long pending orders, open sessions and partly refunded orders are watched for "
            "changes; later changes are left to reconciliation."
        ),
        check=positive,
    )
    reconcile_interval: Duration = field(
        Duration(3600),
        doc="Time between full reconciliations (off the collection path); drift is published.",
        check=positive,
    )
    full_timeout: Duration = field(
        Duration(600),
        doc="Statement timeout of the full computation at start and of each reconciliation.",
        check=positive,
    )
    state_dir: str | None = field(
        None,
        doc=(
            "Directory where the totals are checkpointed (one file per database, written "
            "atomically) so that a restart resumes instead of the full computation; off "
            "when unset."
        ),
    )
    state_max_age: Duration = field(
        Duration(86400),
        doc="A checkpoint whose boundary is older than this is not resumed from.",
        check=positive,
    )


@dataclass(frozen=True, kw_only=True)
class PostgresSourceSettings:
    """The PostgreSQL source: the default query pack and its overrides."""

    enabled: bool = field(True, doc="Collect the PostgreSQL metrics.")
    interval: Duration = field(Duration(30), doc="Time between collections.", check=positive)
    timeout: Duration | None = field(
        None,
        doc=(
            "Server-side statement timeout of each query, a slower one is cancelled "
            "(default 10s, or the interval when that is shorter)."
        ),
        check=positive,
    )

    @property
    def effective_timeout(self) -> float:
        """The timeout in force: as configured, else 10s capped at the interval."""
        return float(self.timeout) if self.timeout is not None else min(10.0, float(self.interval))

    max_series_per_metric: int = field(
        1000,
        doc="Cardinality guard: series past this per metric are folded into label value 'other'.",
        check=at_least(1),
    )
    max_rows_per_query: int = field(
        10000,
        doc="Rows read from one query per collection; the rest are not fetched and are counted "
        "in boxoffice_query_rows_truncated_total.",
        check=at_least(1),
    )
    max_label_length: int = field(
        256,
        doc="Longest label value published, in characters; a longer one is cut (ending in '…' "
        "and a hash) and counted in boxoffice_label_values_truncated_total.",
        check=at_least(16),
    )
    incremental: IncrementalSettings = field(default_factory=IncrementalSettings)


def _between(low: int, high: int) -> Check:
    return lambda v: None if low <= v <= high else f"must be between {low} and {high}, got {v}"


def _base_url(value: str) -> str | None:
    if not value.startswith(("https://", "http://")):
        return f"must be an http(s) URL, got {value!r}"
    return None


@dataclass(frozen=True, kw_only=True)
class StripeSourceSettings:
    """The Stripe source: charges, refunds, disputes, balance, webhook delivery (read-only key)."""

    enabled: bool = field(False, doc="Collect the Stripe metrics.")
    api_key: str | None = field(
        None, doc="Restricted read-only API key (rk_...); prefer api_key_file.", secret=True
    )
    api_key_file: str | None = field(None, doc="File holding the API key.")
    interval: Duration = field(Duration(60), doc="Time between collections.", check=positive)
    timeout: Duration = field(
        Duration(20),
        doc="Time budget of one collection; every request ends by then.",
        check=positive,
    )
    overlap: Duration = field(
        Duration(300),
        doc="Each scan re-lists objects created this long before the last one ended, so "
        "objects that become visible late are still counted (each id once).",
        check=positive,
    )
    max_pages: int = field(
        20,
        doc="Most pages (of 100) read per list and cycle; the rest is read next cycle.",
        check=at_least(1),
    )
    events_window: Duration = field(
        Duration(3600),
        doc="How far back boxoffice_stripe_events_pending_webhooks looks.",
        check=positive,
    )
    max_watched: int = field(
        10000,
        doc="Most pending charges, refunds and open disputes followed until they settle.",
        check=at_least(1),
    )
    api_base: str = field("https://api.stripe.com", doc="API address.", check=_base_url)


@dataclass(frozen=True, kw_only=True)
class TwilioSourceSettings:
    """The Twilio source: SMS counted at their final status, cost and account balance."""

    enabled: bool = field(False, doc="Collect the Twilio metrics.")
    account_sid: str | None = field(None, doc="Account SID (AC...).")
    auth_token: str | None = field(None, doc="Auth token; prefer auth_token_file.", secret=True)
    auth_token_file: str | None = field(None, doc="File holding the auth token.")
    interval: Duration = field(Duration(60), doc="Time between collections.", check=positive)
    timeout: Duration = field(
        Duration(20),
        doc="Time budget of one collection; every request ends by then.",
        check=positive,
    )
    window: Duration = field(
        Duration(3600),
        doc="Messages sent this recently are listed each cycle (by DateSent); longer than the "
        "interval.",
        check=positive,
    )
    page_size: int = field(
        1000, doc="Messages per page (Twilio allows 1 to 1000).", check=_between(1, 1000)
    )
    max_pages: int = field(
        20, doc="Most pages read per cycle; the rest is read next cycle.", check=at_least(1)
    )
    max_in_flight: int = field(
        10000,
        doc="Most messages followed until they reach a final status.",
        check=at_least(1),
    )
    api_base: str = field("https://api.twilio.com", doc="API address.", check=_base_url)


@dataclass(frozen=True, kw_only=True)
class HttpTargetSettings:
    """One endpoint probed by the HTTP health source."""

    name: str = field(doc="Value of the `target` label.")
    url: str = field(doc="URL to request.", check=_base_url)
    method: Literal["GET", "HEAD", "POST"] = field("GET", doc="HTTP method.")
    expected_status: int = field(
        200, doc="Status code that counts as success.", check=_between(100, 599)
    )
    timeout: Duration = field(
        Duration(5), doc="Give up on the request after this long.", check=positive
    )
    headers: dict[str, str] = field(
        default_factory=dict,
        doc="Request headers. Values of Authorization, Cookie and *token*/*key* headers "
        "are treated as secrets; prefer header_files for them.",
        check=_headers,
    )
    header_files: dict[str, str] = field(
        default_factory=dict,
        doc="Request headers whose values are read from files (secrets).",
        check=_headers,
    )
    components_path: str | None = field(
        None,
        doc="Dotted path to the components mapping in a JSON health body (default "
        "`services`, checks, components or details when present).",
    )


@dataclass(frozen=True, kw_only=True)
class HttpSourceSettings:
    """The HTTP health source: probes each target on every collection."""

    interval: Duration = field(Duration(15), doc="Time between collections.", check=positive)
    targets: list[HttpTargetSettings] = field(
        default_factory=list, doc="Endpoints to probe; the source runs when there is one."
    )


@dataclass(frozen=True, kw_only=True)
class SourcesSettings:
    """Each data source, collected in the background on its own interval."""

    postgres: PostgresSourceSettings = field(default_factory=PostgresSourceSettings)
    stripe: StripeSourceSettings = field(default_factory=StripeSourceSettings)
    twilio: TwilioSourceSettings = field(default_factory=TwilioSourceSettings)
    http: HttpSourceSettings = field(default_factory=HttpSourceSettings)


@dataclass(frozen=True, kw_only=True)
class HaSettings:
    """Several exporter replicas: one polls each API source at a time (a lease)."""

    lease_database: str | None = field(
        None,
        doc="Name of a database (under `databases`) whose session advisory locks elect the one "
        "replica that polls Stripe and Twilio; every replica must reach the same server "
        "directly (no PgBouncer in transaction mode). Unset: every replica polls.",
    )
    lease_scope: str = field(
        "",
        doc="Mixed into the lease keys besides the API address and account: set it per shop "
        "when shops share one lease database and one Stripe API address.",
    )


@dataclass(frozen=True, kw_only=True)
class MetricSettings:
    """Per-metric settings: which database it reads, and SQL for schemas that differ."""

    enabled: bool = field(True, doc="Publish this metric.")
    database: str = field("default", doc="Name of the database (under `databases`) to query.")
    sql: str | None = field(
        None,
        doc=(
            "Replacement SQL: one column per label of the metric, named like it, and a "
            "numeric column `value` (money in minor units, e.g. cents). Exactly one read-only "
            "statement (SELECT, WITH … SELECT, VALUES or TABLE); docs/security.md lists the "
            "functions refused."
        ),
    )


@dataclass(frozen=True, kw_only=True)
class LogSettings:
    """Logging to standard error."""

    level: Literal["debug", "info", "warning", "error"] = field("info", doc="Least severe level.")
    format: Literal["logfmt", "json"] = field("logfmt", doc="Line format.")


@dataclass(frozen=True, kw_only=True)
class SmsBridgeSettings:
    """`boxoffice sms-bridge`: Alertmanager webhooks in, an SMS per recipient out (see docs)."""

    listen_address: str = field(
        ":9799",
        doc="Address to serve /alerts/<group>, /metrics and /healthz on.",
        check=listen_address_problem,
    )
    web_config_file: str | None = field(
        None,
        doc="exporter-toolkit web config file: basic_auth_users (bcrypt) and tls_server_config.",
    )
    bearer_token: str | None = field(
        None,
        doc="Token Alertmanager sends as `Authorization: Bearer`; prefer bearer_token_file.",
        secret=True,
    )
    bearer_token_file: str | None = field(None, doc="File holding the bearer token.")
    unauthenticated: bool = field(
        False, doc="Accept webhooks without credentials (only behind a trusted proxy)."
    )
    groups: dict[str, list[str]] = field(
        default_factory=dict,
        doc="Recipient groups: name (the <group> in /alerts/<group>) to E.164 numbers.",
    )
    account_sid: str | None = field(None, doc="Twilio account SID (AC...).")
    auth_token: str | None = field(
        None, doc="Twilio auth token; prefer auth_token_file.", secret=True
    )
    auth_token_file: str | None = field(None, doc="File holding the Twilio auth token.")
    from_number: str | None = field(
        None, doc="Sender number (E.164), or give messaging_service_sid."
    )
    messaging_service_sid: str | None = field(None, doc="Twilio messaging service (MG...).")
    api_base: str = field("https://api.twilio.com", doc="Twilio API address.", check=_base_url)
    max_segments: int = field(
        3,
        doc="Longest SMS in segments; longer texts are cut with an ellipsis.",
        check=_between(1, 10),
    )
    max_body_bytes: int = field(
        262144, doc="Largest webhook body accepted (413 past it).", check=at_least(1024)
    )
    store: str = field(
        "boxoffice-sms-bridge.sqlite",
        doc="SQLite file of the idempotency records (one bridge); ignored with store_dsn.",
    )
    store_dsn: str | None = field(
        None,
        doc="PostgreSQL libpq URI for idempotency records shared by bridges behind an "
        "Alertmanager cluster; prefer store_dsn_file.",
        secret=True,
    )
    store_dsn_file: str | None = field(None, doc="File holding store_dsn.")
    dedup_window: Duration = field(
        Duration(6 * 3600),
        doc="A notification already sent within this long is not sent again; older records are "
        "pruned. Keep it shorter than Alertmanager's repeat_interval so reminders still go out.",
        check=positive,
    )
    request_timeout: Duration = field(
        Duration(5), doc="Timeout of one Twilio request.", check=positive
    )
    deadline: Duration = field(
        Duration(20),
        doc="Time budget of one webhook, Twilio retries included; keep it under Alertmanager's "
        "webhook timeout.",
        check=positive,
    )
    recipient_limit: int = field(
        20,
        doc="Most SMS to one number per recipient_window (Twilio refuses more than about 30 "
        "in 30s, error 14107); past it, messages are held and sent as one digest SMS.",
        check=at_least(1),
    )
    recipient_window: Duration = field(
        Duration(30), doc="The window of recipient_limit.", check=positive
    )
    dry_run: bool = field(False, doc="Log each SMS instead of sending it (Twilio is not called).")
    heartbeat_group: str | None = field(
        None,
        doc="Group texted, once, when Alertmanager's Watchdog heartbeat (POST /heartbeat) stops "
        "arriving for heartbeat_timeout, and once when it is back: routing.yaml's tier 1 SMS "
        "group. Unset: heartbeats are recorded, nobody is texted.",
    )
    heartbeat_timeout: Duration = field(
        Duration(300),
        doc="Silence after which the alerting pipeline counts as down; keep it several "
        "times routing.yaml's heartbeat.interval.",
        check=positive,
    )
    alertmanager_url: str | None = field(
        None,
        doc="Alertmanager the bridge creates silences in when a page is acknowledged by SMS "
        "reply (ACK <code>); unset: pages carry no code and replies are not taken.",
        check=_base_url,
    )
    inbound_url: str | None = field(
        None,
        doc="The public URL of POST /twilio/inbound exactly as configured in Twilio (the "
        "X-Twilio-Signature covers it); required with alertmanager_url.",
        check=_base_url,
    )
    ack_duration: Duration = field(
        Duration(3600),
        doc="How long an acknowledgement silences the higher escalation tiers.",
        check=positive,
    )
    ack_slack_url_file: str | None = field(
        None, doc="File holding a Slack incoming-webhook URL told who acknowledged what."
    )
    balance_interval: Duration = field(
        Duration(600),
        doc="How often the bridge reads its Twilio account's balance "
        "(boxoffice_sms_bridge_twilio_balance).",
        check=positive,
    )


@dataclass(frozen=True, kw_only=True)
class Settings:
    """The whole of boxoffice.yml, after environment variables and flags are applied."""

    databases: dict[str, DatabaseSettings] = field(
        default_factory=dict, doc="Named databases; `default` also comes from --dsn/BOXOFFICE_DSN."
    )
    sources: SourcesSettings = field(default_factory=SourcesSettings)
    ha: HaSettings = field(default_factory=HaSettings)
    metrics: dict[str, MetricSettings] = field(
        default_factory=dict, doc="Overrides keyed by metric name (e.g. boxoffice_revenue_total)."
    )
    web: WebSettings = field(default_factory=WebSettings)
    status_page: StatusPageSettings = field(default_factory=StatusPageSettings)
    log: LogSettings = field(default_factory=LogSettings)
    sms_bridge: SmsBridgeSettings = field(default_factory=SmsBridgeSettings)

-- boxoffice reference schema (SPEC 4.1). Idempotent: safe to run on an existing database.
-- The default query pack reads these tables; the indexes below are the ones it needs.

CREATE TABLE IF NOT EXISTS events (
    id          bigserial PRIMARY KEY,
    slug        text NOT NULL UNIQUE,
    name        text NOT NULL,
    city        text NOT NULL,
    starts_at   timestamptz NOT NULL,
    status      text NOT NULL DEFAULT 'on_sale'
                CHECK (status IN ('on_sale', 'sold_out', 'closed', 'cancelled'))
);

CREATE TABLE IF NOT EXISTS ticket_tiers (
    id          bigserial PRIMARY KEY,
    event_id    bigint NOT NULL REFERENCES events (id) ON DELETE CASCADE,
    tier        text NOT NULL,
    price_cents bigint NOT NULL CHECK (price_cents >= 0),
    capacity    integer NOT NULL CHECK (capacity >= 0),
    UNIQUE (event_id, tier)
);

CREATE TABLE IF NOT EXISTS checkout_sessions (
    id           text PRIMARY KEY,                -- Stripe cs_... id
    tier_id      bigint NOT NULL REFERENCES ticket_tiers (id) ON DELETE CASCADE,
    quantity     integer NOT NULL CHECK (quantity > 0),
    status       text NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'complete', 'expired')),
    created_at   timestamptz NOT NULL DEFAULT now(),
    completed_at timestamptz,
    expires_at   timestamptz NOT NULL DEFAULT now() + interval '30 minutes'
);

CREATE TABLE IF NOT EXISTS orders (
    id                    bigserial PRIMARY KEY,
    checkout_session_id   text REFERENCES checkout_sessions (id) ON DELETE SET NULL,
    tier_id               bigint NOT NULL REFERENCES ticket_tiers (id) ON DELETE CASCADE,
    quantity              integer NOT NULL CHECK (quantity > 0),
    amount_total_cents    bigint NOT NULL CHECK (amount_total_cents >= 0),
    currency              text NOT NULL DEFAULT 'usd',
    payment_status        text NOT NULL DEFAULT 'pending'
                          CHECK (payment_status IN ('pending', 'completed', 'failed', 'refunded')),
    payment_method        text,
    failure_code          text,
    is_member             boolean NOT NULL DEFAULT false,
    customer_email        text,
    created_at            timestamptz NOT NULL DEFAULT now(),
    paid_at               timestamptz,
    refunded_at           timestamptz,
    refunded_amount_cents bigint NOT NULL DEFAULT 0 CHECK (refunded_amount_cents >= 0)
);

CREATE TABLE IF NOT EXISTS webhook_logs (
    id          bigserial PRIMARY KEY,
    provider    text NOT NULL,
    event_type  text NOT NULL,
    status      text NOT NULL CHECK (status IN ('processed', 'error')),
    last_error  text,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);

-- Per-tier aggregates and the inventory join.
CREATE INDEX IF NOT EXISTS orders_tier_id_idx ON orders (tier_id);
CREATE INDEX IF NOT EXISTS ticket_tiers_event_id_idx ON ticket_tiers (event_id);
-- Streams of incremental collection (docs/incremental.md) and "last paid order": each cycle
-- reads only the recent end of these indexes.
CREATE INDEX IF NOT EXISTS orders_created_at_idx ON orders (created_at);
CREATE INDEX IF NOT EXISTS orders_paid_at_idx ON orders (paid_at) WHERE paid_at IS NOT NULL;
CREATE INDEX IF NOT EXISTS orders_refunded_at_idx ON orders (refunded_at) WHERE refunded_at IS NOT NULL;
CREATE INDEX IF NOT EXISTS orders_failed_idx ON orders (created_at) WHERE payment_status = 'failed';
CREATE INDEX IF NOT EXISTS orders_pending_idx ON orders (created_at) WHERE payment_status = 'pending';
-- Open sessions hold inventory; this keeps the reservation gauge index-driven.
CREATE INDEX IF NOT EXISTS checkout_sessions_open_idx
    ON checkout_sessions (tier_id, expires_at) WHERE status = 'open';
CREATE INDEX IF NOT EXISTS checkout_sessions_open_expires_idx
    ON checkout_sessions (expires_at) WHERE status = 'open';
CREATE INDEX IF NOT EXISTS checkout_sessions_created_at_idx ON checkout_sessions (created_at);
CREATE INDEX IF NOT EXISTS checkout_sessions_completed_idx
    ON checkout_sessions (completed_at) WHERE status = 'complete';
CREATE INDEX IF NOT EXISTS checkout_sessions_expired_idx
    ON checkout_sessions (expires_at) WHERE status = 'expired';
CREATE INDEX IF NOT EXISTS webhook_logs_created_at_idx ON webhook_logs (created_at);
CREATE INDEX IF NOT EXISTS webhook_logs_updated_at_idx ON webhook_logs (updated_at);

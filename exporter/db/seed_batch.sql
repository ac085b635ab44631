-- One statement per seeding batch (exporter/db/seed.py): orders, their checkout sessions
-- (plus abandoned ones) and the webhook deliveries they caused. Salts: seed * 64 + k, one k
-- per independent choice. Parameters are named psycopg placeholders.
WITH drawn AS MATERIALIZED (
    SELECT g.i, t.*,
           CASE WHEN pg_temp.rnd(g.i, %(seed)s * 64 + 2) < 0.12
                THEN floor(pg_temp.rnd(g.i, %(seed)s * 64 + 3) * least(2, t.weeks))
                ELSE floor(sqrt(pg_temp.rnd(g.i, %(seed)s * 64 + 3)) * t.weeks) END AS week,
           width_bucket(pg_temp.rnd(g.i, %(seed)s * 64 + 4), %(hour_cum)s::float8[]) - 1 AS hour,
           pg_temp.rnd(g.i, %(seed)s * 64 + 5) AS r_second,
           5 + pg_temp.rnd(g.i, %(seed)s * 64 + 6) * 115 AS pay_delay,
           pg_temp.rnd(g.i, %(seed)s * 64 + 7) AS r_status,
           width_bucket(pg_temp.rnd(g.i, %(seed)s * 64 + 9), ARRAY[0, 0.55, 0.85, 0.95]) AS quantity,
           pg_temp.rnd(g.i, %(seed)s * 64 + 10) < 0.25 AS is_member,
           (ARRAY[0.10, 0.15, 0.20])[1 + floor(pg_temp.rnd(g.i, %(seed)s * 64 + 11) * 3)::int] AS discount
    FROM generate_series(%(lo)s::bigint, %(hi)s::bigint) AS g(i)
    JOIN pg_temp.seed_tiers t
      ON t.idx = width_bucket(pg_temp.rnd(g.i, %(seed)s * 64 + 1), %(tier_cum)s::float8[])
),
placed AS (
    SELECT d.*,
           -- Whole weeks back into the window keep the hour-of-week shape; the clamp only
           -- catches windows shorter than a week.
           greatest(d.window_start, least(d.window_end, CASE
               WHEN d.raw_at > d.window_end THEN d.raw_at - interval '7 days'
                    * ceil(extract(epoch FROM d.raw_at - d.window_end) / 604800)
               WHEN d.raw_at < d.window_start THEN d.raw_at + interval '7 days'
                    * ceil(extract(epoch FROM d.window_start - d.raw_at) / 604800)
               ELSE d.raw_at END)) AS created_at
    FROM (SELECT drawn.*,
                 (drawn.week0 + make_interval(weeks => drawn.week::int, hours => drawn.hour,
                                              secs => drawn.r_second * 3600))
                 AT TIME ZONE %(tz)s AS raw_at
          FROM drawn) d
),
decided AS (
    SELECT p.*,
           CASE WHEN p.created_at + make_interval(secs => p.pay_delay) > %(now)s THEN 'pending'
                WHEN p.created_at > %(now)s - interval '15 minutes' AND p.r_status < 0.3 THEN 'pending'
                WHEN p.r_status < %(failed)s THEN 'failed'
                WHEN p.cancelled OR p.r_status < %(refunded)s THEN 'refunded'
                ELSE 'completed' END AS status,
           round(p.quantity * p.price_cents * (1 - CASE WHEN p.is_member THEN p.discount ELSE 0 END))::bigint AS amount,
           'cs_live_a1' || substr(md5(%(seed)s || '/' || p.i), 1, 30) AS session_id
    FROM placed p
),
final AS (
    SELECT d.*,
           CASE WHEN d.status IN ('completed', 'refunded')
                THEN d.created_at + make_interval(secs => d.pay_delay) END AS paid_at,
           d.status = 'completed' AND pg_temp.rnd(d.i, %(seed)s * 64 + 12) < %(partial)s AS partial
    FROM decided d
),
refunds AS (
    SELECT f.*,
           CASE WHEN f.status = 'refunded' OR f.partial
                THEN f.paid_at + (%(now)s - f.paid_at) * pg_temp.rnd(f.i, %(seed)s * 64 + 13) END AS refunded_at,
           CASE WHEN f.status = 'refunded' THEN f.amount
                WHEN f.partial THEN round(f.amount * (0.2 + 0.3 * pg_temp.rnd(f.i, %(seed)s * 64 + 14)))::bigint
                ELSE 0 END AS refunded_amount
    FROM final f
),
sessions AS (
    INSERT INTO checkout_sessions (id, tier_id, quantity, status, created_at, completed_at, expires_at)
    SELECT r.session_id, r.tier_id, r.quantity,
           CASE WHEN r.paid_at IS NOT NULL THEN 'complete'
                WHEN r.status = 'pending' AND r.created_at + interval '30 minutes' > %(now)s THEN 'open'
                ELSE 'expired' END,
           r.created_at, r.paid_at, r.created_at + interval '30 minutes'
    FROM refunds r
    UNION ALL
    SELECT 'cs_live_b1' || substr(md5(%(seed)s || '/abandoned/' || r.i), 1, 30), r.tier_id, r.quantity,
           CASE WHEN a.at + interval '30 minutes' > %(now)s THEN 'open' ELSE 'expired' END,
           a.at, NULL, a.at + interval '30 minutes'
    FROM refunds r
    CROSS JOIN LATERAL (SELECT greatest(r.window_start, r.created_at
                               - interval '2 days' * pg_temp.rnd(r.i, %(seed)s * 64 + 21)) AS at) a
    WHERE pg_temp.rnd(r.i, %(seed)s * 64 + 20) < %(abandoned)s
),
inserted_orders AS (
    INSERT INTO orders (id, checkout_session_id, tier_id, quantity, amount_total_cents, currency,
                        payment_status, payment_method, failure_code, is_member, customer_email,
                        created_at, paid_at, refunded_at, refunded_amount_cents)
    SELECT r.i, r.session_id, r.tier_id, r.quantity, r.amount, r.currency, r.status,
           (%(methods)s::text[])[width_bucket(pg_temp.rnd(r.i, %(seed)s * 64 + 15), %(method_cum)s::float8[])],
           CASE WHEN r.status = 'failed'
                THEN (%(codes)s::text[])[width_bucket(pg_temp.rnd(r.i, %(seed)s * 64 + 16), %(code_cum)s::float8[])] END,
           r.is_member,
           'buyer' || abs(hashint8extended(r.i, %(seed)s * 64 + 17) %% 150000) || '@example.com',
           r.created_at, r.paid_at, r.refunded_at, r.refunded_amount
    FROM refunds r
)
INSERT INTO webhook_logs (id, provider, event_type, status, last_error, created_at, updated_at)
SELECT r.i * 4 + v.k, v.provider, v.event_type,
       CASE WHEN pg_temp.rnd(r.i * 4 + v.k, %(seed)s * 64 + 30) < 0.015 THEN 'error' ELSE 'processed' END,
       CASE WHEN pg_temp.rnd(r.i * 4 + v.k, %(seed)s * 64 + 30) < 0.015
            THEN (%(webhook_errors)s::text[])[1 + floor(pg_temp.rnd(r.i * 4 + v.k, %(seed)s * 64 + 31) * 4)::int] END,
       least(v.at + interval '2 seconds', %(now)s),
       greatest(least(v.at + interval '2 seconds', %(now)s),
                least(v.at + interval '2 seconds'
                      + interval '10 minutes' * pg_temp.rnd(r.i * 4 + v.k, %(seed)s * 64 + 32), %(now)s))
FROM refunds r
CROSS JOIN LATERAL (VALUES
    (0, 'stripe', 'checkout.session.completed', r.paid_at, r.paid_at IS NOT NULL),
    (1, 'stripe', CASE WHEN r.status = 'failed' THEN 'payment_intent.payment_failed'
                       ELSE 'payment_intent.succeeded' END,
        coalesce(r.paid_at, r.created_at + make_interval(secs => r.pay_delay)),
        r.paid_at IS NOT NULL OR r.status = 'failed'),
    (2, 'stripe', 'charge.refunded', r.refunded_at, r.refunded_at IS NOT NULL),
    (3, 'twilio', 'message.status', r.paid_at + interval '20 seconds',
        r.paid_at IS NOT NULL AND pg_temp.rnd(r.i, %(seed)s * 64 + 33) < 0.3)
) AS v(k, provider, event_type, at, keep)
WHERE v.keep

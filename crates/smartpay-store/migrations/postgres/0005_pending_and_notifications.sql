-- Pending resolution (CONTRACT §11) and notifications to merchants (CONTRACT §12): the
-- PostgreSQL mirror of migrations/sqlite/0005_pending_and_notifications.sql.

ALTER TABLE jobs DROP CONSTRAINT IF EXISTS jobs_kind_check;
ALTER TABLE jobs ADD CONSTRAINT jobs_kind_check CHECK (kind IN ('DELAYED_CAPTURE', 'AUTO_CANCEL', 'SETTLEMENT',
    'RESOLVE_AUTHORIZATION', 'RESOLVE_MODIFICATION'));
ALTER TABLE jobs ADD COLUMN target TEXT NOT NULL DEFAULT '';       -- RESOLVE_MODIFICATION: the modification's id
ALTER TABLE jobs ADD COLUMN lease_token TEXT;                      -- the holder's claim
ALTER TABLE jobs ADD COLUMN nudged BIGINT NOT NULL DEFAULT 0;      -- made due again while leased
ALTER TABLE jobs ADD COLUMN created_at_ms BIGINT NOT NULL DEFAULT 0;
ALTER TABLE jobs ADD COLUMN last_error TEXT;
UPDATE jobs SET created_at_ms = due_at_ms;
ALTER TABLE jobs DROP CONSTRAINT IF EXISTS jobs_kind_payment_id_key;
ALTER TABLE jobs ADD CONSTRAINT jobs_kind_payment_target_key UNIQUE (kind, payment_id, target);
CREATE INDEX jobs_payment ON jobs(payment_id);

INSERT INTO jobs (kind, payment_id, target, due_at_ms, created_at_ms)
    SELECT 'RESOLVE_AUTHORIZATION', id, '', last_status_at_ms, last_status_at_ms
    FROM payments WHERE status = 'AUTHORIZATION_PENDING'
    ON CONFLICT DO NOTHING;
INSERT INTO jobs (kind, payment_id, target, due_at_ms, created_at_ms)
    SELECT 'RESOLVE_MODIFICATION', payment_id, id, last_status_at_ms, created_at_ms
    FROM modifications WHERE status IN ('CAPTURE_PENDING', 'REFUND_PENDING', 'CANCELLATION_PENDING')
    ON CONFLICT DO NOTHING;

ALTER TABLE payments ADD COLUMN review_reason TEXT;

CREATE TABLE notification_settings (
    merchant_id          TEXT PRIMARY KEY REFERENCES merchants(id),
    url                  TEXT NOT NULL,
    auth_kind            TEXT NOT NULL CHECK (auth_kind IN ('NONE', 'BASIC', 'OAUTH')),
    username             TEXT,
    password_sealed      BYTEA,
    token_url            TEXT,
    client_id            TEXT,
    client_secret_sealed BYTEA,
    updated_at_ms        BIGINT NOT NULL
);

CREATE TABLE notification_secrets (
    id            TEXT PRIMARY KEY,
    merchant_id   TEXT NOT NULL REFERENCES merchants(id),
    secret_sealed BYTEA NOT NULL,
    created_at_ms BIGINT NOT NULL,
    expires_at_ms BIGINT
);
CREATE INDEX notification_secrets_merchant ON notification_secrets(merchant_id);

CREATE TABLE notifications (
    id                          TEXT PRIMARY KEY,
    merchant_id                 TEXT NOT NULL REFERENCES merchants(id),
    payment_id                  TEXT COLLATE "C" NOT NULL REFERENCES payments(id),
    object_type                 TEXT NOT NULL CHECK (object_type IN ('payment', 'refund')),
    object_id                   TEXT NOT NULL,
    modification_id             TEXT,
    origin                      TEXT NOT NULL CHECK (origin IN ('api', 'widget', 'automated')),
    status                      TEXT NOT NULL,
    reconciliation_reference_id TEXT,
    created_at_ms               BIGINT NOT NULL,
    state                       TEXT NOT NULL CHECK (state IN ('PENDING', 'DELIVERED', 'FAILED')),
    attempts                    BIGINT NOT NULL DEFAULT 0,
    next_attempt_at_ms          BIGINT NOT NULL,
    lease_until_ms              BIGINT NOT NULL DEFAULT 0,
    lease_token                 TEXT,
    retry_from_ms               BIGINT NOT NULL,
    delivered_at_ms             BIGINT
);
CREATE INDEX notifications_due ON notifications(state, next_attempt_at_ms);
CREATE INDEX notifications_merchant ON notifications(merchant_id, created_at_ms);
CREATE INDEX notifications_payment ON notifications(payment_id);

CREATE TABLE notification_attempts (
    notification_id TEXT NOT NULL REFERENCES notifications(id),
    seq             BIGINT NOT NULL,
    at_ms           BIGINT NOT NULL,
    status_code     BIGINT,
    error           TEXT,
    duration_ms     BIGINT NOT NULL,
    PRIMARY KEY (notification_id, seq)
);

CREATE TABLE provider_notices (
    provider       TEXT NOT NULL,
    event_id       TEXT NOT NULL,
    received_at_ms BIGINT NOT NULL,
    PRIMARY KEY (provider, event_id)
);

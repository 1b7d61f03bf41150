-- Pending resolution (CONTRACT §11) and notifications to merchants (CONTRACT §12).
--
-- jobs gains two kinds that poll a provider until a pending authorization or modification is
-- final, a target (the modification's id; '' for payment-wide jobs), when the work became due
-- first, and the last error, for operators. SQLite cannot widen a CHECK: the table is rebuilt.

CREATE TABLE jobs_new (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    kind           TEXT NOT NULL CHECK (kind IN ('DELAYED_CAPTURE', 'AUTO_CANCEL', 'SETTLEMENT',
                     'RESOLVE_AUTHORIZATION', 'RESOLVE_MODIFICATION')),
    payment_id     TEXT NOT NULL REFERENCES payments(id),
    target         TEXT NOT NULL DEFAULT '',        -- RESOLVE_MODIFICATION: the modification's id
    due_at_ms      INTEGER NOT NULL,
    attempts       INTEGER NOT NULL DEFAULT 0,
    lease_until_ms INTEGER NOT NULL DEFAULT 0,      -- a worker holds the job until then
    lease_token    TEXT,                            -- the holder's claim: only it completes or retries
    nudged         INTEGER NOT NULL DEFAULT 0,      -- made due again while leased (poll_soon)
    created_at_ms  INTEGER NOT NULL DEFAULT 0,
    last_error     TEXT,                            -- why the last run did not finish it
    UNIQUE (kind, payment_id, target)
);
INSERT INTO jobs_new (id, kind, payment_id, due_at_ms, attempts, lease_until_ms, created_at_ms)
    SELECT id, kind, payment_id, due_at_ms, attempts, lease_until_ms, due_at_ms FROM jobs;
DROP TABLE jobs;
ALTER TABLE jobs_new RENAME TO jobs;
CREATE INDEX jobs_due ON jobs(due_at_ms);
CREATE INDEX jobs_payment ON jobs(payment_id);

-- What was left pending before this version (a crash, a provider that never answered) is
-- resolved from now on, like everything that becomes pending later.
INSERT INTO jobs (kind, payment_id, target, due_at_ms, created_at_ms)
    SELECT 'RESOLVE_AUTHORIZATION', id, '', last_status_at_ms, last_status_at_ms
    FROM payments WHERE status = 'AUTHORIZATION_PENDING';
INSERT INTO jobs (kind, payment_id, target, due_at_ms, created_at_ms)
    SELECT 'RESOLVE_MODIFICATION', payment_id, id, last_status_at_ms, created_at_ms
    FROM modifications WHERE status IN ('CAPTURE_PENDING', 'REFUND_PENDING', 'CANCELLATION_PENDING');

-- A payment the provider contradicted (another amount or currency): not advanced, kept for an
-- operator to reconcile.
ALTER TABLE payments ADD COLUMN review_reason TEXT;

-- Where and how a merchant receives notifications. Passwords and client secrets are sealed
-- under the master key, bound to the merchant.
CREATE TABLE notification_settings (
    merchant_id        TEXT PRIMARY KEY REFERENCES merchants(id),
    url                TEXT NOT NULL,
    auth_kind          TEXT NOT NULL CHECK (auth_kind IN ('NONE', 'BASIC', 'OAUTH')),
    username           TEXT,
    password_sealed    BLOB,
    token_url          TEXT,
    client_id          TEXT,
    client_secret_sealed BLOB,
    updated_at_ms      INTEGER NOT NULL
);

-- Signing secrets; several are active while a merchant rotates.
CREATE TABLE notification_secrets (
    id            TEXT PRIMARY KEY,
    merchant_id   TEXT NOT NULL REFERENCES merchants(id),
    secret_sealed BLOB NOT NULL,
    created_at_ms INTEGER NOT NULL,
    expires_at_ms INTEGER                              -- NULL: active until the next rotation
);
CREATE INDEX notification_secrets_merchant ON notification_secrets(merchant_id);

-- The outbox: one row per status change a merchant is told about, written in the status
-- change's transaction.
CREATE TABLE notifications (
    id                          TEXT PRIMARY KEY,      -- event id: payload id, SmartPay-Event-Id
    merchant_id                 TEXT NOT NULL REFERENCES merchants(id),
    payment_id                  TEXT NOT NULL REFERENCES payments(id),
    object_type                 TEXT NOT NULL CHECK (object_type IN ('payment', 'refund')),
    object_id                   TEXT NOT NULL,
    modification_id             TEXT,                  -- a refund's modificationId
    origin                      TEXT NOT NULL CHECK (origin IN ('api', 'widget', 'automated')),
    status                      TEXT NOT NULL,         -- the status it reports
    reconciliation_reference_id TEXT,
    created_at_ms               INTEGER NOT NULL,
    state                       TEXT NOT NULL CHECK (state IN ('PENDING', 'DELIVERED', 'FAILED')),
    attempts                    INTEGER NOT NULL DEFAULT 0,
    next_attempt_at_ms          INTEGER NOT NULL,
    lease_until_ms              INTEGER NOT NULL DEFAULT 0,
    lease_token                 TEXT,
    retry_from_ms               INTEGER NOT NULL,      -- the retry horizon counts from here
    delivered_at_ms             INTEGER
);
CREATE INDEX notifications_due ON notifications(state, next_attempt_at_ms);
CREATE INDEX notifications_merchant ON notifications(merchant_id, created_at_ms);
CREATE INDEX notifications_payment ON notifications(payment_id);

CREATE TABLE notification_attempts (
    notification_id TEXT NOT NULL REFERENCES notifications(id),
    seq             INTEGER NOT NULL,
    at_ms           INTEGER NOT NULL,
    status_code     INTEGER,
    error           TEXT,
    duration_ms     INTEGER NOT NULL,
    PRIMARY KEY (notification_id, seq)
);

-- Inbound provider notifications already seen (deduplication).
CREATE TABLE provider_notices (
    provider       TEXT NOT NULL,
    event_id       TEXT NOT NULL,
    received_at_ms INTEGER NOT NULL,
    PRIMARY KEY (provider, event_id)
);

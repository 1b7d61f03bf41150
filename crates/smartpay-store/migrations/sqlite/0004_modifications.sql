-- Modifications (captures, refunds, cancellations, settlements, chargebacks), their history,
-- scheduled jobs (delayed capture, automatic cancellation, sandbox settlement), and the
-- merchant settings that schedule them.

CREATE TABLE modifications (
    id                          TEXT PRIMARY KEY,   -- internal id; the provider's idempotency key
    payment_id                  TEXT NOT NULL REFERENCES payments(id),
    merchant_id                 TEXT NOT NULL REFERENCES merchants(id),
    modification_id             TEXT NOT NULL,      -- the merchant's (or a generated) modificationId
    kind                        TEXT NOT NULL CHECK (kind IN ('CAPTURE', 'REFUND', 'CANCELLATION',
                                  'SETTLEMENT', 'CHARGEBACK')),
    status                      TEXT NOT NULL CHECK (status IN ('CAPTURE_PENDING', 'CAPTURED', 'CAPTURE_FAILED',
                                  'REFUND_PENDING', 'REFUNDED', 'REFUND_FAILED', 'CANCELLATION_PENDING',
                                  'CANCELLED', 'CANCELLATION_FAILED', 'SETTLED', 'CHARGEBACK')),
    amount_minor                INTEGER NOT NULL CHECK (amount_minor >= 0),
    currency                    TEXT NOT NULL CHECK (length(currency) = 3),
    description                 TEXT,
    custom_references           TEXT,               -- canonical JSON
    reconciliation_reference_id TEXT,               -- the provider's reference of this modification
    failure_code                TEXT,               -- the provider's refusal (MOD1 code)
    fingerprint                 BLOB NOT NULL,      -- of the request, for modificationId replays
    response                    BLOB,               -- the first answer, replayed byte for byte
    created_at_ms               INTEGER NOT NULL,
    last_status_at_ms           INTEGER NOT NULL,
    UNIQUE (merchant_id, modification_id)
);
CREATE INDEX modifications_payment ON modifications(payment_id, created_at_ms);

CREATE TABLE modification_status_history (
    modification_pk TEXT NOT NULL REFERENCES modifications(id),
    seq             INTEGER NOT NULL,
    status          TEXT NOT NULL,
    at_ms           INTEGER NOT NULL,
    PRIMARY KEY (modification_pk, seq)
);

CREATE TABLE jobs (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    kind           TEXT NOT NULL CHECK (kind IN ('DELAYED_CAPTURE', 'AUTO_CANCEL', 'SETTLEMENT')),
    payment_id     TEXT NOT NULL REFERENCES payments(id),
    due_at_ms      INTEGER NOT NULL,
    attempts       INTEGER NOT NULL DEFAULT 0,
    lease_until_ms INTEGER NOT NULL DEFAULT 0,     -- a worker holds the job until then
    UNIQUE (kind, payment_id)
);
CREATE INDEX jobs_due ON jobs(due_at_ms);

ALTER TABLE merchants ADD COLUMN capture_delay_seconds INTEGER;   -- capture mode 'delayed'
ALTER TABLE merchants ADD COLUMN auto_cancel_seconds INTEGER;     -- NULL: never cancel automatically

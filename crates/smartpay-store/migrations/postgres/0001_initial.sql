-- Merchants, their API credentials, token-signing keys, payments and their history,
-- idempotency records. Portable column types (TEXT ids, BIGINT money in minor units,
-- BIGINT epoch milliseconds) so the PostgreSQL schema can mirror this one.

CREATE TABLE merchants (
    id            TEXT PRIMARY KEY,               -- the merchantKey (UUID)
    name          TEXT NOT NULL,
    status        TEXT NOT NULL CHECK (status IN ('ACTIVE', 'DISABLED')),
    capture_mode  TEXT NOT NULL DEFAULT 'auto' CHECK (capture_mode IN ('auto', 'manual', 'delayed')),
    identity_jwks TEXT,                           -- JWKS of the merchant's end-user identity issuer (X-Access-Token)
    created_at_ms BIGINT NOT NULL
);

CREATE TABLE api_credentials (
    id            TEXT PRIMARY KEY,
    merchant_id   TEXT NOT NULL REFERENCES merchants(id),
    kind          TEXT NOT NULL CHECK (kind IN ('BASIC', 'OAUTH')),
    client_id     TEXT UNIQUE,                    -- OAuth clients only
    secret_digest BYTEA NOT NULL,                  -- HMAC-SHA-256 under the server pepper; never the secret
    label         TEXT NOT NULL DEFAULT '',
    created_at_ms BIGINT NOT NULL,
    revoked_at_ms BIGINT
);
CREATE INDEX api_credentials_by_merchant ON api_credentials(merchant_id, kind);

CREATE TABLE signing_keys (
    kid           TEXT PRIMARY KEY,
    alg           TEXT NOT NULL CHECK (alg IN ('ES256')),
    public_jwk    TEXT NOT NULL,
    private_enc   BYTEA NOT NULL,                  -- AES-256-GCM under the server key, AAD = kid
    created_at_ms BIGINT NOT NULL,
    retired_at_ms BIGINT                         -- no longer signs; still verifies until tokens expire
);

-- A counter bumped by every change to credentials, merchants or keys: servers poll it to
-- drop cached authentication results within seconds.
CREATE TABLE auth_epoch (
    id    BIGINT PRIMARY KEY CHECK (id = 1),
    epoch BIGINT NOT NULL
);
INSERT INTO auth_epoch (id, epoch) VALUES (1, 0);

CREATE TABLE payments (
    id                          TEXT COLLATE "C" PRIMARY KEY,  -- transactionId (UUID); byte order, as SQLite
    merchant_id                 TEXT NOT NULL REFERENCES merchants(id),
    status                      TEXT NOT NULL CHECK (status IN ('CREATED', 'AUTHORIZATION_PENDING',
                                  'AUTHORIZATION_COMPLETED', 'AUTHORIZATION_FAILED', 'CAPTURE_PENDING',
                                  'CAPTURED', 'SETTLED', 'CANCELLED', 'REFUNDED', 'EXPIRED')),
    amount_minor                BIGINT NOT NULL CHECK (amount_minor > 0),
    currency                    TEXT NOT NULL CHECK (length(currency) = 3),
    description                 TEXT NOT NULL,
    partner_reference           TEXT,
    customer_account_id         TEXT,
    external_order_reference    TEXT,
    custom_references           TEXT,              -- canonical JSON
    culture                     TEXT,
    request_json                TEXT NOT NULL,     -- the recognized request, canonical JSON
    token_digest                BYTEA NOT NULL UNIQUE, -- HMAC-SHA-256 of the checkoutToken
    payment_method              TEXT NOT NULL DEFAULT 'CARDS',
    reconciliation_reference_id TEXT,
    mit                         BIGINT NOT NULL DEFAULT 0 CHECK (mit IN (0, 1)),
    identity_subject            TEXT,              -- X-Access-Token subject, when verified
    created_at_ms               BIGINT NOT NULL,
    last_status_at_ms           BIGINT NOT NULL,
    expires_at_ms               BIGINT NOT NULL
);
CREATE UNIQUE INDEX payments_partner_reference ON payments(merchant_id, partner_reference)
    WHERE partner_reference IS NOT NULL;
CREATE INDEX payments_expiring ON payments(expires_at_ms) WHERE status = 'CREATED';

CREATE TABLE payment_status_history (
    payment_id TEXT COLLATE "C" NOT NULL REFERENCES payments(id),
    seq        BIGINT NOT NULL,
    status     TEXT NOT NULL,
    at_ms      BIGINT NOT NULL,
    reason     TEXT,
    PRIMARY KEY (payment_id, seq)
);

CREATE TABLE idempotency_keys (
    merchant_id   TEXT NOT NULL REFERENCES merchants(id),
    scope         TEXT NOT NULL CHECK (scope IN ('IDEMPOTENCY_KEY', 'PARTNER_REFERENCE')),
    key           TEXT NOT NULL,
    route         TEXT NOT NULL,
    fingerprint   BYTEA NOT NULL,                  -- SHA-256 of the canonical request
    payment_id    TEXT COLLATE "C" NOT NULL REFERENCES payments(id),
    response_enc  BYTEA NOT NULL,                  -- the first response, AES-256-GCM (it holds the checkoutToken)
    created_at_ms BIGINT NOT NULL,
    expires_at_ms BIGINT,                        -- NULL: kept as long as the payment
    PRIMARY KEY (merchant_id, scope, key)
);
CREATE INDEX idempotency_keys_expiry ON idempotency_keys(expires_at_ms) WHERE expires_at_ms IS NOT NULL;

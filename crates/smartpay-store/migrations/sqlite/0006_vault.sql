-- The payment credential vault (CONTRACT §8): accounts per (merchant, customerAccountId), the
-- payment options stored under them, the vault's key versions and its key rotations.
-- Card numbers and provider tokens are envelope-encrypted by the server (smartpay-vault) before
-- they reach this database; its key-encryption key never does. No column holds a CVC.

CREATE TABLE accounts (
    merchant_id     TEXT NOT NULL REFERENCES merchants(id),
    account_id      TEXT NOT NULL,                  -- the merchant's customerAccountId
    billing_address TEXT,                           -- canonical JSON (Update Account)
    consumer        TEXT,                           -- canonical JSON (Update Account)
    created_at_ms   INTEGER NOT NULL,
    updated_at_ms   INTEGER NOT NULL,
    PRIMARY KEY (merchant_id, account_id)
);

CREATE TABLE payment_options (
    reference     TEXT PRIMARY KEY,                 -- storedPaymentOptionReference
    merchant_id   TEXT NOT NULL,
    account_id    TEXT NOT NULL,
    code          TEXT NOT NULL,                    -- VISA, MSTRCRD, AMEX, …
    masked        TEXT NOT NULL,                    -- BIN 6 + **** + last 4: the one truncated form kept
    expiry_month  INTEGER NOT NULL CHECK (expiry_month BETWEEN 1 AND 12),
    expiry_year   INTEGER NOT NULL,
    fingerprint   BLOB NOT NULL,                    -- keyed hash of the number (finds duplicates)
    kek_id        TEXT NOT NULL,                    -- the key version both sealed blobs are under
    number_sealed BLOB NOT NULL,                    -- the card number, envelope-encrypted
    token_sealed  BLOB NOT NULL,                    -- the provider's token, envelope-encrypted
    provider      TEXT NOT NULL,
    is_default    INTEGER NOT NULL DEFAULT 0 CHECK (is_default IN (0, 1)),
    created_at_ms INTEGER NOT NULL,
    FOREIGN KEY (merchant_id, account_id) REFERENCES accounts(merchant_id, account_id),
    UNIQUE (merchant_id, account_id, fingerprint)
);
CREATE INDEX payment_options_account ON payment_options(merchant_id, account_id, created_at_ms);
CREATE INDEX payment_options_kek ON payment_options(kek_id, reference);

-- Key versions the vault has seen: a check value sealed under each proves that a key given at
-- start is the right one; a retired version is refused from then on.
CREATE TABLE vault_keys (
    kek_id        TEXT PRIMARY KEY,
    check_sealed  BLOB NOT NULL,
    state         TEXT NOT NULL CHECK (state IN ('ACTIVE', 'RETIRED')),
    created_at_ms INTEGER NOT NULL,
    retired_at_ms INTEGER
);

-- Key rotations, resumable after a crash: the last record done is the cursor.
CREATE TABLE vault_rotations (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    kind           TEXT NOT NULL CHECK (kind IN ('KEK', 'DEK')),
    from_kek       TEXT NOT NULL,
    to_kek         TEXT NOT NULL,
    cursor         TEXT NOT NULL DEFAULT '',
    done           INTEGER NOT NULL DEFAULT 0,
    started_at_ms  INTEGER NOT NULL,
    finished_at_ms INTEGER
);

-- A payment made with a stored option; and the option the payment itself stored (removed again
-- when the authorization fails).
ALTER TABLE payments ADD COLUMN stored_option_reference TEXT;
ALTER TABLE payments ADD COLUMN new_option_reference TEXT;

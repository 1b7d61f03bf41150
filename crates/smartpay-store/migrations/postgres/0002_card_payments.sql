-- Card payments through providers, and the origins allowed to embed a merchant's widget.

ALTER TABLE payments ADD COLUMN provider TEXT;
ALTER TABLE payments ADD COLUMN attempts BIGINT NOT NULL DEFAULT 0;   -- card submissions, valid or not
ALTER TABLE payments ADD COLUMN decline_code TEXT;                     -- provider decline reason (MOD1 code)
ALTER TABLE payments ADD COLUMN challenge_url TEXT;                    -- pending 3-D Secure challenge

CREATE TABLE merchant_origins (
    merchant_id   TEXT NOT NULL REFERENCES merchants(id),
    origin        TEXT NOT NULL,                  -- scheme://host[:port], exactly as browsers send it
    created_at_ms BIGINT NOT NULL,
    PRIMARY KEY (merchant_id, origin)
);

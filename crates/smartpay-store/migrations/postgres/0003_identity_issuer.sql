-- The `iss` and `aud` a merchant's end-user identity tokens (X-Access-Token) must carry, when
-- the merchant registered them; NULL accepts any, as before.

ALTER TABLE merchants ADD COLUMN identity_issuer TEXT;     -- exact `iss`
ALTER TABLE merchants ADD COLUMN identity_audience TEXT;   -- must be `aud`, or one of its items

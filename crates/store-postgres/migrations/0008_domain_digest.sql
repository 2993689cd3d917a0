-- Whether HTTP Digest is accepted on settings.phtml for the domain's accounts (on by default;
-- the operator may turn it off).
ALTER TABLE domains ADD COLUMN digest BOOLEAN NOT NULL DEFAULT TRUE;

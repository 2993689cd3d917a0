-- Whether HTTP Digest is accepted on settings.phtml for the domain's accounts (1: on, the
-- default; 0: turned off by the operator).
ALTER TABLE domains ADD COLUMN digest INTEGER NOT NULL DEFAULT 1;

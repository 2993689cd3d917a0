-- What tells an account's certificates apart besides the serial (issue 20): the name given at
-- issue or later by the owner, and when the certificate last authenticated a request, to the
-- minute, written by each server about once a minute (`core::cert_use`). Certificates issued
-- before have neither.
ALTER TABLE certificates ADD COLUMN name TEXT;
ALTER TABLE certificates ADD COLUMN last_used_at TEXT;

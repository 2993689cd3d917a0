-- Domains, accounts with their credentials, and the record of every issued certificate.
CREATE TABLE domains (
    name        TEXT PRIMARY KEY NOT NULL,
    created_at  TEXT NOT NULL
);

CREATE TABLE accounts (
    id                INTEGER PRIMARY KEY,
    username          TEXT NOT NULL,
    domain            TEXT NOT NULL REFERENCES domains(name),
    first_name        TEXT NOT NULL DEFAULT '',
    last_name         TEXT NOT NULL DEFAULT '',
    email             TEXT,
    timezone          TEXT NOT NULL,
    mobile            TEXT,
    pstn_caller_id    TEXT,
    language          TEXT NOT NULL,
    no_answer_timeout INTEGER NOT NULL,
    quick_dial        TEXT,
    privacy           INTEGER NOT NULL DEFAULT 0,
    prepaid           INTEGER NOT NULL DEFAULT 0,
    ha1_md5           TEXT NOT NULL,
    ha1_sha256        TEXT NOT NULL,
    password_hash     TEXT NOT NULL,
    created_at        TEXT NOT NULL,
    updated_at        TEXT NOT NULL,
    UNIQUE (domain, username)
);

-- Certificates outlive their accounts (for the record), so `account` is text, not a key.
CREATE TABLE certificates (
    serial      TEXT PRIMARY KEY NOT NULL,
    subject     TEXT NOT NULL,
    role        TEXT NOT NULL CHECK (role IN ('subscriber', 'admin', 'service')),
    account     TEXT,
    fingerprint TEXT NOT NULL,
    not_before  TEXT NOT NULL,
    not_after   TEXT NOT NULL,
    issued_at   TEXT NOT NULL,
    revoked_at  TEXT
);
CREATE INDEX certificates_account ON certificates (account);

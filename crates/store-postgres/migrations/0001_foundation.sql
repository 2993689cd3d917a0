-- Domains, accounts with their credentials, and the record of every issued certificate.
-- The PostgreSQL twin of store-sqlite's 0001. Keys that are listed in order use COLLATE "C", so
-- that lists sort by bytes as on SQLite whatever the database's default collation.
CREATE TABLE domains (
    name        TEXT COLLATE "C" PRIMARY KEY NOT NULL,
    created_at  TIMESTAMPTZ NOT NULL
);

CREATE TABLE accounts (
    id                BIGSERIAL PRIMARY KEY,
    username          TEXT COLLATE "C" NOT NULL,
    domain            TEXT COLLATE "C" NOT NULL REFERENCES domains(name),
    first_name        TEXT NOT NULL DEFAULT '',
    last_name         TEXT NOT NULL DEFAULT '',
    email             TEXT,
    timezone          TEXT NOT NULL,
    mobile            TEXT,
    pstn_caller_id    TEXT,
    language          TEXT NOT NULL,
    no_answer_timeout BIGINT NOT NULL,
    quick_dial        TEXT,
    privacy           BOOLEAN NOT NULL DEFAULT FALSE,
    prepaid           BOOLEAN NOT NULL DEFAULT FALSE,
    ha1_md5           TEXT NOT NULL,
    ha1_sha256        TEXT NOT NULL,
    password_hash     TEXT NOT NULL,
    created_at        TIMESTAMPTZ NOT NULL,
    updated_at        TIMESTAMPTZ NOT NULL,
    UNIQUE (domain, username)
);

-- Certificates outlive their accounts (for the record), so `account` is text, not a key.
CREATE TABLE certificates (
    serial      TEXT COLLATE "C" PRIMARY KEY NOT NULL,
    subject     TEXT NOT NULL,
    role        TEXT NOT NULL CHECK (role IN ('subscriber', 'admin', 'service')),
    account     TEXT,
    fingerprint TEXT NOT NULL,
    not_before  TIMESTAMPTZ NOT NULL,
    not_after   TIMESTAMPTZ NOT NULL,
    issued_at   TIMESTAMPTZ NOT NULL,
    revoked_at  TIMESTAMPTZ
);
CREATE INDEX certificates_account ON certificates (account);

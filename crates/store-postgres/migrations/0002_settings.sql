-- Settings of the seed API: one address namespace per domain (accounts and aliases), ENUM
-- numbers, forwarding, accept rules and the temporary rule (DND), reject rules, voicemail and
-- the phonebook. Every row belongs to an account and goes with it.
CREATE TABLE sip_addresses (
    domain      TEXT COLLATE "C" NOT NULL,
    username    TEXT COLLATE "C" NOT NULL,
    account_id  BIGINT NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    is_alias    BOOLEAN NOT NULL,
    created_at  TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (domain, username)
);
CREATE INDEX sip_addresses_account ON sip_addresses (account_id);
INSERT INTO sip_addresses (domain, username, account_id, is_alias, created_at)
    SELECT domain, username, id, FALSE, created_at FROM accounts;

CREATE TABLE enum_numbers (
    number      TEXT COLLATE "C" PRIMARY KEY NOT NULL,
    account_id  BIGINT NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    created_at  TIMESTAMPTZ NOT NULL
);
CREATE INDEX enum_numbers_account ON enum_numbers (account_id);

CREATE TABLE diversions (
    account_id  BIGINT NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    condition   TEXT NOT NULL CHECK (condition IN ('FUNC', 'FNOL', 'FBUS', 'FNOA', 'FUNV')),
    target      TEXT NOT NULL,
    PRIMARY KEY (account_id, condition)
);

CREATE TABLE accept_rules (
    account_id   BIGINT NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    days         INTEGER NOT NULL CHECK (days BETWEEN 1 AND 127),
    start_minute INTEGER NOT NULL CHECK (start_minute BETWEEN 0 AND 1439),
    stop_minute  INTEGER NOT NULL CHECK (stop_minute BETWEEN 0 AND 1439),
    groups       TEXT NOT NULL,
    PRIMARY KEY (account_id, days)
);

CREATE TABLE accept_temporary (
    account_id  BIGINT PRIMARY KEY NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    groups      TEXT NOT NULL,
    until       TIMESTAMPTZ
);

CREATE TABLE reject_rules (
    account_id  BIGINT NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    pattern     TEXT COLLATE "C" NOT NULL,
    PRIMARY KEY (account_id, pattern)
);

CREATE TABLE voicemail (
    account_id  BIGINT PRIMARY KEY NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    enabled     BOOLEAN NOT NULL,
    delivery    TEXT NOT NULL CHECK (delivery IN ('email', 'email_and_store')),
    email       TEXT,
    pin_hash    TEXT
);

CREATE TABLE phonebook (
    account_id  BIGINT NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    uri         TEXT COLLATE "C" NOT NULL,
    name        TEXT NOT NULL,
    groups      TEXT NOT NULL,
    PRIMARY KEY (account_id, uri)
);

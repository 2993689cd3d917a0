-- Prepaid balances, rates, balance history, prepaid sessions, and call records with the local
-- accounts they belong to. Money is BIGINT ten-thousandths; call times are BIGINT Unix seconds
-- (as on SQLite, ordered and ranged by the database).
ALTER TABLE accounts ADD COLUMN balance BIGINT NOT NULL DEFAULT 0;

CREATE TABLE rates (
    prefix            TEXT COLLATE "C" PRIMARY KEY NOT NULL,
    description       TEXT NOT NULL,
    connect_fee       BIGINT NOT NULL,
    rate_per_minute   BIGINT NOT NULL,
    increment_seconds BIGINT NOT NULL,
    minimum_seconds   BIGINT NOT NULL
);

CREATE TABLE balance_history (
    id          BIGSERIAL PRIMARY KEY,
    account_id  BIGINT NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    at          TIMESTAMPTZ NOT NULL,
    action      TEXT NOT NULL,
    description TEXT NOT NULL,
    value       BIGINT NOT NULL,
    balance     BIGINT NOT NULL,
    session     TEXT
);
CREATE INDEX balance_history_account ON balance_history (account_id, id);

CREATE TABLE prepaid_sessions (
    call_id           TEXT COLLATE "C" PRIMARY KEY NOT NULL,
    account_id        BIGINT NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    destination       TEXT NOT NULL,
    opened_at         TIMESTAMPTZ NOT NULL,
    max_session_time  BIGINT NOT NULL,
    reserved          BIGINT NOT NULL,
    rate_prefix       TEXT NOT NULL,
    rate_description  TEXT NOT NULL,
    connect_fee       BIGINT NOT NULL,
    rate_per_minute   BIGINT NOT NULL,
    increment_seconds BIGINT NOT NULL,
    minimum_seconds   BIGINT NOT NULL,
    closed_at         TIMESTAMPTZ,
    duration          BIGINT,
    price             BIGINT,
    balance_after     BIGINT
);
CREATE INDEX prepaid_sessions_open ON prepaid_sessions (account_id) WHERE closed_at IS NULL;

CREATE TABLE calls (
    id        BIGSERIAL PRIMARY KEY,
    call_id   TEXT NOT NULL,
    from_tag  TEXT NOT NULL,
    to_tag    TEXT NOT NULL,
    caller    TEXT NOT NULL,
    callee    TEXT NOT NULL,
    start_at  BIGINT NOT NULL,
    stop_at   BIGINT NOT NULL,
    duration  BIGINT NOT NULL,
    status    INTEGER NOT NULL,
    media     TEXT NOT NULL,
    proxy_ip  TEXT NOT NULL,
    price     BIGINT,
    UNIQUE (call_id, from_tag, to_tag)
);

CREATE TABLE call_parties (
    account_id BIGINT NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    direction  TEXT NOT NULL CHECK (direction IN ('placed', 'received')),
    start_at   BIGINT NOT NULL,
    call_row   BIGINT NOT NULL REFERENCES calls(id) ON DELETE CASCADE,
    PRIMARY KEY (account_id, direction, start_at, call_row)
);

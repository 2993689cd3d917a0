-- Prepaid balances, rates, balance history, prepaid sessions, and call records with the local
-- accounts they belong to. Money is INTEGER ten-thousandths; call times are INTEGER Unix
-- seconds (ordered and ranged by the database).
ALTER TABLE accounts ADD COLUMN balance INTEGER NOT NULL DEFAULT 0;

CREATE TABLE rates (
    prefix            TEXT PRIMARY KEY NOT NULL,
    description       TEXT NOT NULL,
    connect_fee       INTEGER NOT NULL,
    rate_per_minute   INTEGER NOT NULL,
    increment_seconds INTEGER NOT NULL,
    minimum_seconds   INTEGER NOT NULL
);

CREATE TABLE balance_history (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    account_id  INTEGER NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    at          TEXT NOT NULL,
    action      TEXT NOT NULL,
    description TEXT NOT NULL,
    value       INTEGER NOT NULL,
    balance     INTEGER NOT NULL,
    session     TEXT
);
CREATE INDEX balance_history_account ON balance_history (account_id, id);

CREATE TABLE prepaid_sessions (
    call_id           TEXT PRIMARY KEY NOT NULL,
    account_id        INTEGER NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    destination       TEXT NOT NULL,
    opened_at         TEXT NOT NULL,
    max_session_time  INTEGER NOT NULL,
    reserved          INTEGER NOT NULL,
    rate_prefix       TEXT NOT NULL,
    rate_description  TEXT NOT NULL,
    connect_fee       INTEGER NOT NULL,
    rate_per_minute   INTEGER NOT NULL,
    increment_seconds INTEGER NOT NULL,
    minimum_seconds   INTEGER NOT NULL,
    closed_at         TEXT,
    duration          INTEGER,
    price             INTEGER,
    balance_after     INTEGER
);
CREATE INDEX prepaid_sessions_open ON prepaid_sessions (account_id) WHERE closed_at IS NULL;

CREATE TABLE calls (
    id        INTEGER PRIMARY KEY,
    call_id   TEXT NOT NULL,
    from_tag  TEXT NOT NULL,
    to_tag    TEXT NOT NULL,
    caller    TEXT NOT NULL,
    callee    TEXT NOT NULL,
    start_at  INTEGER NOT NULL,
    stop_at   INTEGER NOT NULL,
    duration  INTEGER NOT NULL,
    status    INTEGER NOT NULL,
    media     TEXT NOT NULL,
    proxy_ip  TEXT NOT NULL,
    price     INTEGER,
    UNIQUE (call_id, from_tag, to_tag)
);

CREATE TABLE call_parties (
    account_id INTEGER NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    direction  TEXT NOT NULL CHECK (direction IN ('placed', 'received')),
    start_at   INTEGER NOT NULL,
    call_row   INTEGER NOT NULL REFERENCES calls(id) ON DELETE CASCADE,
    PRIMARY KEY (account_id, direction, start_at, call_row)
) WITHOUT ROWID;

-- The change journal. Keyed by the account's address (text), so it outlives the account.
CREATE TABLE journal (
    id        BIGSERIAL PRIMARY KEY,
    account   TEXT NOT NULL,
    at        TIMESTAMPTZ NOT NULL,
    door      TEXT NOT NULL,
    actor     TEXT NOT NULL,
    source    TEXT,
    resource  TEXT NOT NULL,
    old_value TEXT,
    new_value TEXT
);
CREATE INDEX journal_account ON journal (account, id);

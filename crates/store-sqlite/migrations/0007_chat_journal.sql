-- The chat journal (issue 18): opaque, client-encrypted chat-history entries that Blink
-- replicates between an account's devices (CDRTool's client_journal). Not the change journal.
-- AUTOINCREMENT: a journal id is never given twice, even after the newest entry is deleted
-- (clients remember ids). Times are Unix seconds; bytes is the length of data.
CREATE TABLE chat_journal (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    account_id INTEGER NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    created_at INTEGER NOT NULL,
    device     TEXT NOT NULL,
    bytes      INTEGER NOT NULL,
    data       TEXT NOT NULL
);
CREATE INDEX chat_journal_account ON chat_journal (account_id, id);

-- The chat journal (issue 18): opaque, client-encrypted chat-history entries that Blink
-- replicates between an account's devices (CDRTool's client_journal). Not the change journal.
-- Ids come from an identity (never given twice); a put takes them under the account's row
-- lock, so within an account they grow in commit order. Times are Unix seconds; bytes is the
-- length of data.
CREATE TABLE chat_journal (
    id         BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    account_id BIGINT NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    created_at BIGINT NOT NULL,
    device     TEXT NOT NULL,
    bytes      BIGINT NOT NULL,
    data       TEXT NOT NULL
);
CREATE INDEX chat_journal_account ON chat_journal (account_id, id);

-- Forwarding rules with conditions (issue 19): an account's rules and the sets they name, as
-- one JSON document (`core::forwarding::Document`, `v` 1), written and read only through
-- `core::forwarding` and never queried by content (so TEXT, as the SQLite store keeps it).
--
-- Only an account whose forwarding says more than the seed's five conditions has a row: the
-- seed view (table `diversions`) is kept for every account, written from the same value in the
-- same transaction, and an account without a row has the simple rules of its diversions. So
-- existing data needs no change: every account's forwarding is what it was.
CREATE TABLE forwarding_documents (
    account_id  BIGINT PRIMARY KEY REFERENCES accounts(id) ON DELETE CASCADE,
    document    TEXT NOT NULL CHECK (document::jsonb IS NOT NULL)
);

-- The document is part of what a write reads as its state (migration 0012): the lock and the
-- optimistic read return it too, so that a change of forwarding applies to the rules as they
-- are. An optimistic change of the seed view is made only for an account without a document
-- (`account_write.rs`); one with a document takes the lock.
ALTER TYPE account_write_state_row ADD ATTRIBUTE f_document TEXT;

CREATE OR REPLACE FUNCTION account_write_state(p_domain TEXT, p_username TEXT)
RETURNS SETOF account_write_state_row
LANGUAGE sql STABLE AS $$
    SELECT a.id, a.username::TEXT, a.domain::TEXT, a.first_name, a.last_name,
        a.email, a.timezone, a.mobile, a.pstn_caller_id, a.language, a.no_answer_timeout,
        a.quick_dial, a.privacy, a.prepaid, a.created_at,
        ARRAY(SELECT d.condition FROM diversions d WHERE d.account_id = a.id
              ORDER BY d.condition),
        ARRAY(SELECT d.target FROM diversions d WHERE d.account_id = a.id
              ORDER BY d.condition),
        t.groups, t.until, v.enabled, v.delivery, v.email, v.pin_hash,
        COALESCE(w.version, 0),
        (SELECT f.document FROM forwarding_documents f WHERE f.account_id = a.id)
    FROM accounts a
    LEFT JOIN accept_temporary t ON t.account_id = a.id
    LEFT JOIN voicemail v ON v.account_id = a.id
    LEFT JOIN account_write_versions w ON w.account_id = a.id
    WHERE a.domain = p_domain AND a.username = p_username
$$;

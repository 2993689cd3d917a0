-- Forwarding rules with conditions (issue 19): an account's rules and the sets they name, as
-- one JSON document (`core::forwarding::Document`, `v` 1), written and read only through
-- `core::forwarding` and never queried by content.
--
-- Only an account whose forwarding says more than the seed's five conditions has a row: the
-- seed view (table `diversions`) is kept for every account, written from the same value in the
-- same transaction, and an account without a row has the simple rules of its diversions. So
-- existing data needs no change: every account's forwarding is what it was.
CREATE TABLE forwarding_documents (
    account_id  INTEGER PRIMARY KEY NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    document    TEXT NOT NULL CHECK (json_valid(document))
);

-- A version per account, bumped by every write of the account (issue 16): a writer that read
-- the account without locking it (an optimistic write, `account_write.rs`) changes it only if
-- the version is still the one it read, in one statement that commits by itself. What the
-- version covers is what a write reads as its state (`lock_account_for_write`'s columns: the
-- profile, forwarding, DND and voicemail); every writer of those takes the lock below, which
-- now bumps it. Billing locks the account without bumping: the balance is not part of that
-- state.
--
-- In a narrow table of its own, half-filled pages, no index on the version: a bump is a
-- heap-only update of a small row, where one of `accounts` would write its wide row and both
-- its indexes. An account without a row is at version 0 (accounts are created without one).
CREATE TABLE account_write_versions (
    account_id BIGINT PRIMARY KEY REFERENCES accounts(id) ON DELETE CASCADE,
    version    BIGINT NOT NULL
) WITH (fillfactor = 50);

-- What a write reads as the state it applies to, and the account's version: one statement,
-- so one snapshot of the database.
CREATE TYPE account_write_state_row AS (
    id BIGINT, username TEXT, domain TEXT, first_name TEXT, last_name TEXT, email TEXT,
    timezone TEXT, mobile TEXT, pstn_caller_id TEXT, language TEXT, no_answer_timeout BIGINT,
    quick_dial TEXT, privacy BOOLEAN, prepaid BOOLEAN, created_at TIMESTAMPTZ,
    d_conditions TEXT[], d_targets TEXT[], t_groups TEXT, t_until TIMESTAMPTZ,
    v_enabled BOOLEAN, v_delivery TEXT, v_email TEXT, v_pin_hash TEXT, write_version BIGINT
);

CREATE FUNCTION account_write_state(p_domain TEXT, p_username TEXT)
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
        COALESCE(w.version, 0)
    FROM accounts a
    LEFT JOIN accept_temporary t ON t.account_id = a.id
    LEFT JOIN voicemail v ON v.account_id = a.id
    LEFT JOIN account_write_versions w ON w.account_id = a.id
    WHERE a.domain = p_domain AND a.username = p_username
$$;

-- The lock of migration 0007, which now bumps the version, and the state as above (with the
-- version this write made).
DROP FUNCTION lock_account_for_write(TEXT, TEXT);
CREATE FUNCTION lock_account_for_write(p_domain TEXT, p_username TEXT)
RETURNS SETOF account_write_state_row
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    locked BIGINT;
BEGIN
    SELECT a.id INTO locked FROM accounts a
        WHERE a.domain = p_domain AND a.username = p_username
        FOR NO KEY UPDATE;
    IF NOT FOUND THEN
        RETURN;
    END IF;
    INSERT INTO account_write_versions AS w (account_id, version) VALUES (locked, 1)
        ON CONFLICT (account_id) DO UPDATE SET version = w.version + 1;
    -- A statement of its own, so it reads what was committed before the lock was granted.
    RETURN QUERY SELECT * FROM account_write_state(p_domain, p_username);
END
$$;

-- An optimistic change of forwarding with its journal entries: applied, and true, only if the
-- account's version is still `p_version`; else nothing is written and false. Called as a
-- statement of its own outside a transaction, so the call is the transaction: one round trip.
-- The bump waits for a writer that bumped the version and has not committed yet, and then
-- sees that writer's version. An account deleted meanwhile has no row to bump (false).
CREATE FUNCTION write_diversions_if_unchanged(
    p_id BIGINT, p_version BIGINT,
    p_cleared TEXT[], p_set TEXT[], p_targets TEXT[],
    j_account TEXT[], j_at TIMESTAMPTZ[], j_door TEXT[], j_actor TEXT[], j_source TEXT[],
    j_resource TEXT[], j_old TEXT[], j_new TEXT[]
) RETURNS BOOLEAN
LANGUAGE plpgsql VOLATILE AS $$
BEGIN
    IF p_version = 0 THEN
        -- Waits for a writer inserting the row, and then conflicts with it.
        INSERT INTO account_write_versions (account_id, version) VALUES (p_id, 1)
            ON CONFLICT (account_id) DO NOTHING;
    ELSE
        UPDATE account_write_versions SET version = version + 1
            WHERE account_id = p_id AND version = p_version;
    END IF;
    IF NOT FOUND THEN
        RETURN FALSE;
    END IF;
    -- Each statement only when it has something to do: every one costs an executor start.
    IF cardinality(p_cleared) > 0 THEN
        DELETE FROM diversions WHERE account_id = p_id AND condition = ANY(p_cleared);
    END IF;
    IF cardinality(p_set) = 1 THEN
        INSERT INTO diversions (account_id, condition, target)
            VALUES (p_id, p_set[1], p_targets[1])
            ON CONFLICT (account_id, condition) DO UPDATE SET target = excluded.target;
    ELSIF cardinality(p_set) > 1 THEN
        INSERT INTO diversions (account_id, condition, target)
            SELECT p_id, c, t FROM UNNEST(p_set, p_targets) AS u(c, t)
            ON CONFLICT (account_id, condition) DO UPDATE SET target = excluded.target;
    END IF;
    IF cardinality(j_account) = 1 THEN
        INSERT INTO journal (account, at, door, actor, source, resource, old_value, new_value)
            VALUES (j_account[1], j_at[1], j_door[1], j_actor[1], j_source[1], j_resource[1],
                    j_old[1], j_new[1]);
    ELSIF cardinality(j_account) > 1 THEN
        INSERT INTO journal (account, at, door, actor, source, resource, old_value, new_value)
            SELECT account, at, door, actor, source, resource, old_value, new_value
            FROM UNNEST(j_account, j_at, j_door, j_actor, j_source, j_resource, j_old, j_new)
                WITH ORDINALITY AS e(account, at, door, actor, source, resource, old_value,
                                     new_value, n)
            ORDER BY n;
    END IF;
    RETURN TRUE;
END
$$;

-- Locks an account for a write and reads what the write applies to (its profile, forwarding,
-- DND and voicemail), in one round trip. A function, because in READ COMMITTED one statement
-- reads with the snapshot it took when it started: a statement that both waited for the lock
-- and read the forwarding would miss a change committed by the writer it waited for. Here the
-- read is a statement of its own, started once the lock is held, so it sees every change
-- committed before.
CREATE FUNCTION lock_account_for_write(p_domain TEXT, p_username TEXT)
RETURNS TABLE (
    id BIGINT, username TEXT, domain TEXT, first_name TEXT, last_name TEXT, email TEXT,
    timezone TEXT, mobile TEXT, pstn_caller_id TEXT, language TEXT, no_answer_timeout BIGINT,
    quick_dial TEXT, privacy BOOLEAN, prepaid BOOLEAN, created_at TIMESTAMPTZ,
    d_conditions TEXT[], d_targets TEXT[], t_groups TEXT, t_until TIMESTAMPTZ,
    v_enabled BOOLEAN, v_delivery TEXT, v_email TEXT, v_pin_hash TEXT
)
LANGUAGE plpgsql VOLATILE AS $$
#variable_conflict use_column
DECLARE
    locked BIGINT;
BEGIN
    SELECT a.id INTO locked FROM accounts a
        WHERE a.domain = p_domain AND a.username = p_username
        FOR NO KEY UPDATE;
    IF NOT FOUND THEN
        RETURN;
    END IF;
    RETURN QUERY SELECT a.id, a.username::TEXT, a.domain::TEXT, a.first_name, a.last_name,
        a.email, a.timezone, a.mobile, a.pstn_caller_id, a.language, a.no_answer_timeout,
        a.quick_dial, a.privacy, a.prepaid, a.created_at,
        ARRAY(SELECT d.condition FROM diversions d WHERE d.account_id = a.id
              ORDER BY d.condition),
        ARRAY(SELECT d.target FROM diversions d WHERE d.account_id = a.id
              ORDER BY d.condition),
        t.groups, t.until, v.enabled, v.delivery, v.email, v.pin_hash
    FROM accounts a
    LEFT JOIN accept_temporary t ON t.account_id = a.id
    LEFT JOIN voicemail v ON v.account_id = a.id
    WHERE a.id = locked;
END
$$;

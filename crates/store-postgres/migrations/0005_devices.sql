-- Registered devices, as the proxy's registrar feeds them (times are Unix seconds).
CREATE TABLE devices (
    account_id    BIGINT NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    contact       TEXT NOT NULL,
    user_agent    TEXT NOT NULL,
    transport     TEXT NOT NULL,
    source        TEXT NOT NULL,
    call_id       TEXT NOT NULL,
    cseq          BIGINT NOT NULL,
    registered_at BIGINT NOT NULL,
    expires_at    BIGINT NOT NULL,
    PRIMARY KEY (account_id, contact)
);
CREATE INDEX devices_expiry ON devices (expires_at);

-- Prepaid cards (vouchers, core::voucher): made by the operator in batches for one domain,
-- redeemed once by a prepaid account of that domain. The card's number is not stored, only its
-- labelled SHA-256 (number_hash). Money is INTEGER ten-thousandths. used_by is the redeeming
-- account's address as text, kept when the account is deleted.
CREATE TABLE vouchers (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    domain      TEXT NOT NULL REFERENCES domains(name),
    value       INTEGER NOT NULL CHECK (value > 0),
    number_hash TEXT NOT NULL,
    created_at  TEXT NOT NULL,
    expires_at  TEXT,
    created_by  TEXT NOT NULL,
    disabled_at TEXT,
    used_by     TEXT,
    used_at     TEXT,
    CHECK ((used_by IS NULL) = (used_at IS NULL))
);
CREATE INDEX vouchers_domain ON vouchers (domain, id);

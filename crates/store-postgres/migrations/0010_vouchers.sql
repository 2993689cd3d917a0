-- Prepaid cards (vouchers, core::voucher): made by the operator in batches for one domain,
-- redeemed once by a prepaid account of that domain. The card's number is not stored, only its
-- labelled SHA-256 (number_hash). Money is BIGINT ten-thousandths. used_by is the redeeming
-- account's address as text, kept when the account is deleted.
CREATE TABLE vouchers (
    id          BIGSERIAL PRIMARY KEY,
    domain      TEXT COLLATE "C" NOT NULL REFERENCES domains(name),
    value       BIGINT NOT NULL CHECK (value > 0),
    number_hash TEXT NOT NULL,
    created_at  TIMESTAMPTZ NOT NULL,
    expires_at  TIMESTAMPTZ,
    created_by  TEXT NOT NULL,
    disabled_at TIMESTAMPTZ,
    used_by     TEXT,
    used_at     TIMESTAMPTZ,
    CHECK ((used_by IS NULL) = (used_at IS NULL))
);
CREATE INDEX vouchers_domain ON vouchers (domain, id);

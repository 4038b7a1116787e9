-- Foundation: API keys, CloudSigner signers, the certificates the internal CA issued, and CRLs.
-- Times are unix seconds (BIGINT) and ids TEXT so the same SQL runs on SQLite and PostgreSQL.

-- Only a SHA-256 of each key is kept: a stolen database must not yield usable credentials.
CREATE TABLE api_keys (
    id          TEXT PRIMARY KEY,
    key_hash    TEXT NOT NULL UNIQUE,
    created_at  BIGINT NOT NULL
);

-- One row per enrolled device. csr_der is kept because renewal re-certifies the same
-- public key and subject without asking the device for a new CSR.
CREATE TABLE signers (
    signer_id       TEXT PRIMARY KEY,
    user_id         TEXT NOT NULL,
    status          TEXT NOT NULL,
    csr_der         BYTEA NOT NULL,
    current_serial  TEXT NOT NULL,
    not_after       BIGINT NOT NULL,
    -- When the renewal job should re-certify (2/3 of the lifetime by default).
    renew_after     BIGINT NOT NULL,
    created_at      BIGINT NOT NULL,
    updated_at      BIGINT NOT NULL
);
CREATE INDEX signers_due_for_renewal ON signers (status, renew_after);
CREATE INDEX signers_due_for_expiry ON signers (status, not_after);

-- Every certificate ever issued, so history survives renewals and replacements.
CREATE TABLE certificates (
    serial             TEXT PRIMARY KEY,
    signer_id          TEXT NOT NULL REFERENCES signers (signer_id),
    der                BYTEA NOT NULL,
    not_before         BIGINT NOT NULL,
    not_after          BIGINT NOT NULL,
    issued_at          BIGINT NOT NULL,
    -- ENROLLMENT (from a CSR) or RENEWAL (same key re-certified).
    issued_for         TEXT NOT NULL,
    revoked_at         BIGINT,
    revocation_reason  TEXT
);
CREATE INDEX certificates_by_signer ON certificates (signer_id, issued_at);
CREATE INDEX certificates_revoked ON certificates (revoked_at);

-- Each CRL the CA signed; the highest number is the one served.
CREATE TABLE crls (
    number       BIGINT PRIMARY KEY,
    der          BYTEA NOT NULL,
    this_update  BIGINT NOT NULL,
    next_update  BIGINT NOT NULL
);

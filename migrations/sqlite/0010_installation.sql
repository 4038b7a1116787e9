-- Facts every replica of one installation must agree on, recorded by the first process that
-- starts on this database and checked by every later one. Today one fact: the SHA-256 of the CA
-- certificate (`ca_certificate_sha256`), so a replica started with another data directory's CA
-- key refuses to start instead of issuing certificates nobody else's chain, CRL or OCSP answers
-- for. A key/value table rather than a column, so a later fact (the signing-link key) needs no
-- migration of its own.
CREATE TABLE installation (
    fact TEXT PRIMARY KEY,
    value TEXT NOT NULL,
    recorded_at BIGINT NOT NULL
);

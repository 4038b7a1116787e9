-- The certificates Signet's CA issued for signing-order signatures (one fresh key per signature),
-- so the OCSP responder can answer "good" (or "revoked") for them rather than "unknown", which a
-- PAdES B-LT collector needs. Not the `certificates` table: that one belongs to CloudSigner
-- signers (signer_id is a NOT NULL reference to `signers`, which SQLite cannot relax in place),
-- and keeps each certificate's DER. Here only the serial and dates are kept: the certificate's
-- subject names the person, and an order's personal data must go with anonymisation; the
-- serial, dates and status are all a status answer needs. No reference to `orders` either: the
-- certificate outlives a deleted order, and a validator may ask about it for years.
CREATE TABLE signature_certificates (
    serial             TEXT PRIMARY KEY,
    order_id           TEXT NOT NULL,
    not_before         BIGINT NOT NULL,
    not_after          BIGINT NOT NULL,
    issued_at          BIGINT NOT NULL,
    revoked_at         BIGINT,
    revocation_reason  TEXT
);
CREATE INDEX signature_certificates_by_order ON signature_certificates (order_id);

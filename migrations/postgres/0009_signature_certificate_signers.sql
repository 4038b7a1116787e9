-- Which of the order's signers each signature certificate was issued for, so an operator can
-- revoke the certificate of one signer's signature (`signet order revoke-signature ORDER SIGNER`).
-- The signer's task position, not their internal id: anonymisation gives a login a new internal
-- id precisely so the old one links to nothing, and the position says nothing about the person.
-- NULL for certificates issued before this migration (their signer is not known; none of them
-- can be named by signer, and the CRL and OCSP still answer for them by serial).
ALTER TABLE signature_certificates ADD COLUMN signer_position BIGINT;

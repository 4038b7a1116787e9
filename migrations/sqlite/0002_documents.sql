-- CloudSigner documents: one PDF prepared for one signer. The bytes live in the blob store;
-- a row names its blobs by key. Rows of deleted documents stay (status DELETED) for audit.
CREATE TABLE documents (
    document_id         TEXT PRIMARY KEY,
    signer_id           TEXT NOT NULL REFERENCES signers (signer_id),
    external_id         TEXT,
    name                TEXT,
    file_name           TEXT NOT NULL,
    -- The upload as received: its size and SHA-256 (hex).
    size                BIGINT NOT NULL,
    sha256              TEXT NOT NULL,
    status              TEXT NOT NULL,
    -- The DER SignedAttributes the device signs (the API's `hash`), kept verbatim: finishing
    -- hashes exactly these bytes, never a re-encoding.
    signed_attributes   BLOB NOT NULL,
    -- The /ByteRange of the prepared revision and the certificate the attributes reference.
    byte_range          TEXT NOT NULL,
    certificate_serial  TEXT NOT NULL REFERENCES certificates (serial),
    prepared_blob       TEXT,
    signed_blob         TEXT,
    signed_size         BIGINT,
    created_at          BIGINT NOT NULL,
    updated_at          BIGINT NOT NULL
);
CREATE INDEX documents_by_signer ON documents (signer_id);

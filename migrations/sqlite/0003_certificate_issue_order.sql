-- A signer's certificates in the order they were issued. issued_at has one-second resolution,
-- so a re-enrollment within the same second could not be told apart from the one it replaced.
-- Existing rows keep 0 and fall back to issued_at.
ALTER TABLE certificates ADD COLUMN issue_order BIGINT NOT NULL DEFAULT 0;

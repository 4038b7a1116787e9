-- The archive-timestamp job (PAdES B-LTA renewal, ETSI EN 319 142-1 §5.5). A B-LTA file ends with
-- a document timestamp whose proof lasts only as long as its TSA certificate; before that ends,
-- the job appends fresh revocation data for that certificate and a new document timestamp.
--
-- archive_expires_at: when the file's last document timestamp stops proving anything (the
-- notAfter of the certificate that signed it), unix seconds; NULL for files below B-LTA. The job
-- asks for rows whose time is within the margin (`archive_margin_days`), so changing the margin
-- applies to every stored file without rewriting rows. Written in the same statement as the
-- file it describes (the WAITING → SIGNED change, an order's signature, the job's own
-- compare-and-set), so a file and its due time never disagree.
--
-- archive_claimed_until: a lease, so that of several replicas one re-timestamps a row and the
-- others skip it while the lease lasts; one that fails (a TSA down) is tried again once it ends.
--
-- No back-fill: the level of a signature was not recorded before this migration, and B-LTA
-- arrived in the same release, so no stored row can be a B-LTA file that needs one.
ALTER TABLE documents ADD COLUMN archive_expires_at BIGINT;
ALTER TABLE documents ADD COLUMN archive_claimed_until BIGINT;
ALTER TABLE orders ADD COLUMN archive_expires_at BIGINT;
ALTER TABLE orders ADD COLUMN archive_claimed_until BIGINT;
-- Partial: most rows are not B-LTA files and never take part in the job's question.
CREATE INDEX documents_archive_due ON documents (archive_expires_at)
    WHERE archive_expires_at IS NOT NULL;
CREATE INDEX orders_archive_due ON orders (archive_expires_at)
    WHERE archive_expires_at IS NOT NULL;

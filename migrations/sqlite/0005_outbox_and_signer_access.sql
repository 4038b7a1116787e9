-- The transactional outbox (mail and webhooks) and what the signer pages keep per task.

-- One row per message to deliver, written in the transaction of the event that causes it and
-- delivered by a job (claimed with FOR UPDATE SKIP LOCKED on PostgreSQL): retried with backoff
-- until delivered or given up. Mail rows hold no address and no text: the message is rendered
-- when it is sent, from the order as it is then (an anonymized person gets no mail).
CREATE TABLE outbox (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    -- 'MAIL' or 'WEBHOOK'.
    channel         TEXT NOT NULL,
    -- MAIL: INVITATION, REMINDER or OUTCOME; WEBHOOK: the event's name.
    kind            TEXT NOT NULL,
    order_id        TEXT,
    -- The event that caused it (events.id).
    event_id        BIGINT,
    -- MAIL: 'signer:<position>' or 'solicitor'; WEBHOOK: the receiver's URL.
    recipient       TEXT NOT NULL,
    -- WEBHOOK: the JSON body, fixed when written; MAIL: '{}' or details of the message.
    payload         TEXT NOT NULL,
    created_at      BIGINT NOT NULL,
    attempts        BIGINT NOT NULL DEFAULT 0,
    next_attempt_at BIGINT NOT NULL,
    -- Set while a sender works on the row, so a crashed sender's claim runs out.
    claimed_until   BIGINT,
    delivered_at    BIGINT,
    gave_up_at      BIGINT,
    last_error      TEXT
);
CREATE INDEX outbox_due ON outbox (next_attempt_at) WHERE delivered_at IS NULL AND gave_up_at IS NULL;
CREATE INDEX outbox_by_order ON outbox (order_id);

-- When the reminder before the due date was queued (at most one per task).
ALTER TABLE order_signers ADD COLUMN reminded_at BIGINT;
-- The e-mailed one-time code of signer authentication `email-otp`: only its hash, when it
-- stops being valid, and how many wrong codes were tried.
ALTER TABLE order_signers ADD COLUMN otp_hash TEXT;
ALTER TABLE order_signers ADD COLUMN otp_expires_at BIGINT;
ALTER TABLE order_signers ADD COLUMN otp_attempts BIGINT NOT NULL DEFAULT 0;

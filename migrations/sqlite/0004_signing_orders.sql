-- Signing orders (the Automation API). Times are unix seconds, ids TEXT, JSON as TEXT, like the
-- rest of the schema, so one set of statements serves SQLite and PostgreSQL.

-- One row per person Signet has met, as solicitor or signer. `id` is the row's own key and never
-- changes; `internal_id` is the UUID the API shows, replaced by a fresh one when the person is
-- anonymized (the source's rule), so orders reference `id`, not `internal_id`.
CREATE TABLE logins (
    id              TEXT PRIMARY KEY,
    internal_id     TEXT NOT NULL UNIQUE,
    source          TEXT NOT NULL,
    -- The person's id in its source: INTERNAL the directory user id, EXTERNAL the 12-digit
    -- personal number; replaced by a random value on anonymization.
    user_id         TEXT NOT NULL,
    first_name      TEXT,
    last_name       TEXT,
    mail            TEXT,
    mobile          TEXT,
    anonymized_at   BIGINT,
    created_at      BIGINT NOT NULL,
    updated_at      BIGINT NOT NULL,
    UNIQUE (source, user_id)
);

CREATE TABLE orders (
    order_id                TEXT PRIMARY KEY,
    title                   TEXT NOT NULL,
    description             TEXT,
    state                   TEXT NOT NULL,
    link_type               BIGINT NOT NULL,
    -- JSON arrays, as given (tags) and as understood (options).
    tags                    TEXT NOT NULL,
    options                 TEXT NOT NULL,
    -- The solicitor: a login plus the attributes resolved when the order was made (a snapshot,
    -- so later directory changes do not rewrite history; anonymization blanks it).
    solicitor_login         TEXT NOT NULL REFERENCES logins (id),
    solicitor_identifier    TEXT NOT NULL,
    solicitor_first_name    TEXT,
    solicitor_last_name     TEXT,
    solicitor_mail          TEXT,
    solicitor_mobile        TEXT,
    -- The current PDF (the upload plus every signature so far) in the blob store.
    document_name           TEXT NOT NULL,
    document_blob           TEXT NOT NULL,
    document_size           BIGINT NOT NULL,
    document_sha256         TEXT NOT NULL,
    signatures              BIGINT NOT NULL,
    -- Bumped by every change of the document: signing compares and sets it, so two signatures
    -- racing on one order cannot both build on the same revision.
    revision                BIGINT NOT NULL,
    due_at                  BIGINT NOT NULL,
    created_at              BIGINT NOT NULL,
    updated_at              BIGINT NOT NULL,
    finished_at             BIGINT
);
-- The expiry job's question: which PENDING orders are due?
CREATE INDEX orders_due ON orders (state, due_at);

-- Each signer's task on an order, in the order given.
CREATE TABLE order_signers (
    order_id        TEXT NOT NULL REFERENCES orders (order_id) ON DELETE CASCADE,
    position        BIGINT NOT NULL,
    login_id        TEXT NOT NULL REFERENCES logins (id),
    source          TEXT NOT NULL,
    identifier      TEXT NOT NULL,
    first_name      TEXT,
    last_name       TEXT,
    mail            TEXT,
    mobile          TEXT,
    priority_group  BIGINT NOT NULL,
    status          TEXT NOT NULL,
    action_at       BIGINT,
    reject_reason   TEXT,
    -- Random, not secret: with the server's link key it derives the signing link's token, whose
    -- SHA-256 is all that is stored of it.
    link_nonce      TEXT NOT NULL,
    token_hash      TEXT NOT NULL UNIQUE,
    PRIMARY KEY (order_id, position)
);
CREATE INDEX order_signers_by_login ON order_signers (login_id);

-- Append-only audit trail with the reference's event names. No foreign keys: events outlive the
-- orders and survive anonymization (the source's rule).
CREATE TABLE events (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    event       TEXT NOT NULL,
    at          BIGINT NOT NULL,
    actor       TEXT,
    order_id    TEXT,
    details     TEXT
);
CREATE INDEX events_by_order ON events (order_id);

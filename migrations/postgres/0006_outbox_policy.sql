-- Where the outbox sends: one row per target, replaced at every start-up from the settings
-- (`set_outbox_policy`). Kept in the database rather than in the process so each statement that
-- writes an event can enqueue its messages in the same transaction with one INSERT … SELECT,
-- without threading configuration through every store call; replicas sharing the database share
-- the targets (the last one started wins, as it would for any shared setting).
CREATE TABLE outbox_targets (
    -- 'MAIL' (recipient '*': mail is on) or 'WEBHOOK' (recipient: the receiver's URL).
    channel   TEXT NOT NULL,
    recipient TEXT NOT NULL,
    PRIMARY KEY (channel, recipient)
);

-- Published events, moved here from `outbox` in the transaction that deletes them, with the
-- stream position JetStream acknowledged. Kept for CAREHUB_OUTBOX_RETENTION (7 days by default)
-- so an event the stream lost after acknowledging it can be delivered again (`carehub ops
-- replay`); see carehub_runtime::outbox. Expand-only: an older instance never reads it.
CREATE TABLE outbox_sent (
    id           TEXT PRIMARY KEY,
    subject      TEXT NOT NULL,
    payload      TEXT NOT NULL,
    created_at   BIGINT NOT NULL,
    request_id   TEXT,
    published_at BIGINT NOT NULL,
    stream       TEXT NOT NULL,
    stream_seq   BIGINT NOT NULL
);
CREATE INDEX outbox_sent_created_at ON outbox_sent (created_at);
CREATE INDEX outbox_sent_stream ON outbox_sent (stream, id);

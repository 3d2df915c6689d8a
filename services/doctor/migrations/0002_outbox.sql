-- Events written in the same transaction as the change they describe; published to JetStream
-- by the outbox relay (see carehub_runtime::outbox).
CREATE TABLE outbox (
    id              TEXT PRIMARY KEY,
    subject         TEXT NOT NULL,
    payload         TEXT NOT NULL,
    created_at      BIGINT NOT NULL,
    attempts        BIGINT NOT NULL DEFAULT 0,
    next_attempt_at BIGINT NOT NULL
);

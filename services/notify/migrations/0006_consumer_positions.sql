-- Where each durable consumer of this service stands: the stream sequence, `Nats-Msg-Id` and
-- stream time of the last event it applied. Checked at start, after a NATS reconnect and every
-- CAREHUB_RECONCILE_INTERVAL against the stream (carehub_runtime::consumer): when the stream no
-- longer holds that event there, the durable is re-created from that time minus a minute.
CREATE TABLE consumer_positions (
    durable    TEXT PRIMARY KEY,
    stream     TEXT NOT NULL,
    stream_seq BIGINT NOT NULL,
    msg_id     TEXT,
    stream_ts  BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);

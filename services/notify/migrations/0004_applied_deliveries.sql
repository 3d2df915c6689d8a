-- Every (event, recipient) this service has applied, kept apart from `notifications` so that a
-- notification its user deleted stays deleted when its event is delivered again (a re-created
-- durable, a replay): a pair found here adds no notification and sends no mail. Filled from the
-- notifications there are; pairs whose notification was deleted before this migration are not
-- known.
CREATE TABLE applied_deliveries (
    event_id   TEXT NOT NULL,
    user_id    TEXT NOT NULL,
    applied_at BIGINT NOT NULL,
    PRIMARY KEY (event_id, user_id)
);
INSERT INTO applied_deliveries (event_id, user_id, applied_at)
    SELECT event_id, user_id, created_at FROM notifications;

-- The newest version of each appointment an event of which was applied. An event older than
-- that (a lost event delivered late, after the ones that followed it) is stored for the
-- history, already read, and sends no mail and no live push: it is no longer news.
CREATE TABLE appointment_versions (
    appointment_id TEXT PRIMARY KEY,
    version        BIGINT NOT NULL
);

-- Several admin instances: each open request has one owner instance that routes it and
-- watches its deadlines. An instance that stops renewing its lease loses its requests to the
-- others (see routing::ownership).
ALTER TABLE appointments ADD COLUMN owner TEXT;
CREATE INDEX appointments_owner ON appointments (owner, status);

CREATE TABLE admin_instances (
    id          TEXT PRIMARY KEY,
    lease_until BIGINT NOT NULL,
    started_at  BIGINT NOT NULL
);

-- Auth service tables. Portable SQL: runs unchanged on SQLite and PostgreSQL.
-- Timestamps are Unix milliseconds (BIGINT); ids are UUID v7 text.

CREATE TABLE users (
    id            TEXT PRIMARY KEY,
    email         TEXT NOT NULL UNIQUE,        -- normalized: trimmed, lowercase
    display_name  TEXT NOT NULL,
    password_hash TEXT NOT NULL,               -- argon2id PHC string
    role          TEXT NOT NULL CHECK (role IN ('patient', 'doctor', 'admin')),
    status        TEXT NOT NULL CHECK (status IN ('active', 'pending', 'rejected', 'disabled')),
    -- Bumped whenever every token of the user must die (password change, disable, reject).
    token_generation BIGINT NOT NULL DEFAULT 0,
    created_at    BIGINT NOT NULL,
    updated_at    BIGINT NOT NULL
);

-- A login session = one refresh-token family.
CREATE TABLE sessions (
    id             TEXT PRIMARY KEY,
    user_id        TEXT NOT NULL REFERENCES users (id),
    created_at     BIGINT NOT NULL,
    revoked_at     BIGINT,
    revoked_reason TEXT
);
CREATE INDEX sessions_user ON sessions (user_id);

-- Refresh tokens are stored only as SHA-256 hashes.
CREATE TABLE refresh_tokens (
    token_hash TEXT PRIMARY KEY,
    session_id TEXT NOT NULL REFERENCES sessions (id),
    issued_at  BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    used_at    BIGINT
);
CREATE INDEX refresh_tokens_session ON refresh_tokens (session_id);

-- Access tokens revoked before their expiry (logout). Rows are purged once expired.
CREATE TABLE revoked_tokens (
    jti        TEXT PRIMARY KEY,
    expires_at BIGINT NOT NULL
);

-- Failed-login counters shared by every auth instance.
CREATE TABLE login_throttle (
    key           TEXT PRIMARY KEY,
    failures      BIGINT NOT NULL,
    window_start  BIGINT NOT NULL,
    blocked_until BIGINT NOT NULL DEFAULT 0
);

-- Password reset tokens, stored as hashes, single use.
CREATE TABLE password_resets (
    token_hash TEXT PRIMARY KEY,
    user_id    TEXT NOT NULL REFERENCES users (id),
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    used_at    BIGINT
);
CREATE INDEX password_resets_user ON password_resets (user_id);

-- Append-only record of admin actions on accounts.
CREATE TABLE audit_log (
    id        TEXT PRIMARY KEY,
    at        BIGINT NOT NULL,
    actor_id  TEXT NOT NULL,
    target_id TEXT NOT NULL,
    action    TEXT NOT NULL,
    reason    TEXT
);

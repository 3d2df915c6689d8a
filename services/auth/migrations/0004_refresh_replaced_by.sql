-- The token a refresh token was exchanged for (its hash), so that a renewal whose answer was
-- lost can be retried within a short grace (see store::rotate_refresh). Nullable: rows written
-- before this column, and by an instance of the previous version, have none (expand only).
ALTER TABLE refresh_tokens ADD COLUMN replaced_by TEXT;

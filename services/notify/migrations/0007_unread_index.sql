-- The unread notifications of a user, the set every signed-in client asks the count of and that
-- `?unread=true` pages through: a partial index of only the unread rows, so the count reads the
-- few unread index entries of that user instead of every notification row they ever had.
CREATE INDEX notifications_unread ON notifications (user_id, id) WHERE read_at IS NULL;

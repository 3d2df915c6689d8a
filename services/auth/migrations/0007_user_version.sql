-- The account's version: 1 when created, bumped by every change of the row in the same
-- statement, and carried in each account event (`UserEvent.version`), so the services that keep
-- a copy of the account apply an event only when it is newer than what they hold, whatever
-- order or how many times events arrive. Expand-only: an older instance leaves it alone, and
-- its events carry no version (read as 0).
ALTER TABLE users ADD COLUMN version BIGINT NOT NULL DEFAULT 1;

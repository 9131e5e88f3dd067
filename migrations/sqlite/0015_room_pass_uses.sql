-- Waiting rooms (issue 22): which pass each booking write made in a room's scope carried.
-- `http::room::require_pass` writes one row for each hold, booking or reschedule that carries
-- a pass (the pass's room, citizen and expiry) before the write is made, and makes no write
-- whose row it could not record, so no booking exists without its row; the load test's audit then checks, from the database alone, that every hold and
-- reschedule in an active room's scope has a use of a valid pass (unexpired, of an admitted
-- ticket of the same citizen). Append-only: nothing updates or deletes a use.
CREATE TABLE room_pass_uses (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    room_id         TEXT NOT NULL,
    national_code   TEXT NOT NULL,
    -- 'hold', 'appointment' or 'reschedule'
    kind            TEXT NOT NULL CHECK (kind = 'hold' OR kind = 'appointment' OR kind = 'reschedule'),
    pass_expires_at INTEGER NOT NULL,
    used_at         INTEGER NOT NULL
);
CREATE INDEX room_pass_uses_by_citizen ON room_pass_uses (room_id, national_code);
CREATE TRIGGER room_pass_uses_no_update BEFORE UPDATE ON room_pass_uses
BEGIN SELECT RAISE(ABORT, 'room pass uses are append-only'); END;
CREATE TRIGGER room_pass_uses_no_delete BEFORE DELETE ON room_pass_uses
BEGIN SELECT RAISE(ABORT, 'room pass uses are append-only'); END;

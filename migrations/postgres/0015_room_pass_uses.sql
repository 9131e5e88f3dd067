-- Waiting rooms (issue 22): which pass each booking write made in a room's scope carried.
-- `http::room::require_pass` writes one row for each hold, booking or reschedule that carries
-- a pass (the pass's room, citizen and expiry) before the write is made, and makes no write
-- whose row it could not record, so no booking exists without its row; the load test's audit then checks, from the database alone, that every hold and
-- reschedule in an active room's scope has a use of a valid pass (unexpired, of an admitted
-- ticket of the same citizen). Append-only: nothing updates or deletes a use.
CREATE TABLE room_pass_uses (
    id              BIGSERIAL PRIMARY KEY,
    room_id         TEXT COLLATE "C" NOT NULL,
    national_code   TEXT COLLATE "C" NOT NULL,
    -- 'hold', 'appointment' or 'reschedule'
    kind            TEXT NOT NULL CHECK (kind IN ('hold', 'appointment', 'reschedule')),
    pass_expires_at BIGINT NOT NULL,
    used_at         BIGINT NOT NULL
);
CREATE INDEX room_pass_uses_by_citizen ON room_pass_uses (room_id, national_code);
CREATE FUNCTION room_pass_uses_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN RAISE EXCEPTION 'room pass uses are append-only'; END $$;
CREATE TRIGGER room_pass_uses_no_update BEFORE UPDATE OR DELETE ON room_pass_uses
    FOR EACH ROW EXECUTE FUNCTION room_pass_uses_append_only();

-- Waiting rooms (issue 22): when each ticket was admitted, without a write per ticket.
--
-- `room_ticks`: one row for each tick that moved a room's admission frontier: when
-- (`tick_ms`, the ticking process's clock), the ranks passed by then and the tickets admitted
-- by then (passed − skipped). Ranks are passed in order, so the ticket at rank r was admitted
-- by the first tick whose `passed` exceeds r: its first poll after that finds the tick and
-- records that time as `admitted_at`, and the pass runs from it. The passes given in a span
-- are the difference of two ticks' `admitted`. At most one row a second per open room.
CREATE TABLE room_ticks (
    room_id  TEXT NOT NULL,
    passed   BIGINT NOT NULL CHECK (passed > 0),
    tick_ms  BIGINT NOT NULL,
    admitted BIGINT NOT NULL CHECK (admitted >= 0 AND admitted <= passed),
    PRIMARY KEY (room_id, passed)
);
CREATE INDEX room_ticks_time ON room_ticks (room_id, tick_ms);

-- `pace_per_minute`: how fast the frontier may move, smoothed over the last ticks
-- (nobat_room::Admission::pace_per_minute): ETAs are counted at it.
ALTER TABLE waiting_rooms ADD COLUMN pace_per_minute BIGINT NOT NULL DEFAULT 0 CHECK (pace_per_minute >= 0);

-- `pass_given_at`: when the ticket's first poll after its admission was given the pass
-- (`admitted_at` is the admission itself): the delay between the two is how long applicants
-- took to learn they were in.
ALTER TABLE room_tickets ADD COLUMN pass_given_at BIGINT;

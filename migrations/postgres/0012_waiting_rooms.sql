-- Waiting rooms (issue 22): a room in front of the booking writes of one service (and some
-- provinces, or all), with a pre-queue shuffled at the opening by a committed seed, and the
-- tickets of the applicants who joined it.
--
-- The room row is also the room's shared state: `next_seq` numbers the tickets (dense from 0:
-- a join takes the row's lock, so joins on every process draw from one sequence), `prequeue`
-- is frozen at the opening (the first join or tick at or after `opens_at` sets it to the
-- tickets numbered so far, under the same lock), and the admission frontier moves on at most
-- once a second under a conditional UPDATE on `last_tick_ms`, so one process ticks and every
-- process reads. The seed stays in the database and is served only from `opens_at`.
CREATE TABLE waiting_rooms (
    id                TEXT COLLATE "C" PRIMARY KEY,
    service           TEXT COLLATE "C" NOT NULL,
    -- JSON array of province codes; '[]' is every province.
    provinces         TEXT NOT NULL,
    prequeue_opens_at BIGINT NOT NULL,
    opens_at          BIGINT NOT NULL,
    closes_at         BIGINT NOT NULL,
    -- nobat_room::AdmissionPolicy as JSON.
    admission         TEXT NOT NULL,
    pass_minutes      BIGINT NOT NULL DEFAULT 10 CHECK (pass_minutes > 0),
    ticket_idle_minutes BIGINT NOT NULL DEFAULT 5 CHECK (ticket_idle_minutes > 0),
    seed              TEXT NOT NULL,
    commitment        TEXT NOT NULL,
    next_seq          BIGINT NOT NULL DEFAULT 0 CHECK (next_seq >= 0),
    prequeue          BIGINT CHECK (prequeue >= 0 AND prequeue <= next_seq),
    frontier          BIGINT NOT NULL DEFAULT 0 CHECK (frontier >= 0),
    rate_per_minute   BIGINT NOT NULL,
    last_tick_ms      BIGINT NOT NULL,
    created_at        BIGINT NOT NULL,
    CHECK (prequeue_opens_at <= opens_at AND opens_at < closes_at)
);

-- One ticket per national code and room. `last_seen_at` is written at most once per half
-- `ticket_idle_minutes` (a poll that finds it older refreshes it), so polling stays a read;
-- `admitted_at` is written once, when the ticket's first poll after admission is given its
-- pass (passes in use, waits and ETA errors are counted from it), and `returned_at` once, when
-- a booking made with the pass succeeds.
CREATE TABLE room_tickets (
    room_id      TEXT COLLATE "C" NOT NULL,
    seq          BIGINT NOT NULL CHECK (seq >= 0),
    ticket       TEXT COLLATE "C" NOT NULL UNIQUE,
    national_code TEXT COLLATE "C" NOT NULL,
    joined_at    BIGINT NOT NULL,
    eta_at_join  BIGINT,
    last_seen_at BIGINT NOT NULL,
    admitted_at  BIGINT,
    -- A booking made with the ticket's pass returns it (the controller admits another).
    returned_at  BIGINT,
    PRIMARY KEY (room_id, seq),
    UNIQUE (room_id, national_code)
);
CREATE INDEX room_tickets_admitted ON room_tickets (room_id, admitted_at) WHERE admitted_at IS NOT NULL;

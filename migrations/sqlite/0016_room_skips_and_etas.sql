-- Waiting rooms (issue 22), two loose ends.
--
-- `skipped`: ranks the admission frontier passed whose ticket was gone when it got there
-- (expired unpolled, or queued again under a new number). The ticker counts them among the
-- ranks it has just passed and moves the frontier on by as many, so a rate admits live
-- applicants rather than spending admissions on nobody; tickets admitted = ranks passed −
-- skipped. Derived from the tickets at each tick, written only on the room row.
ALTER TABLE waiting_rooms ADD COLUMN skipped BIGINT NOT NULL DEFAULT 0 CHECK (skipped >= 0);

-- `eta_given_at`: when the ETA in `eta_at_join` was served. A ticket that joins after the
-- opening gets its ETA at the join (`eta_given_at` = `joined_at`); a pre-queue joiner has no
-- order, hence no ETA, until the opening, and records the ETA first served after it (its
-- first poll then), so the ETA error (|ETA − (admitted_at − eta_given_at)| / that wait)
-- covers the pre-queue too. NULL on tickets written before this column: read as `joined_at`.
ALTER TABLE room_tickets ADD COLUMN eta_given_at BIGINT;

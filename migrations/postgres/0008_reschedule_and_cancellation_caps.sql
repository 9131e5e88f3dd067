-- Limits that traders hit (issue 21): at most N reschedules per appointment and N
-- cancellations per citizen in a rolling window, decided by the writer from rows it reads.

-- Times the applicant moved the appointment (staff and admin relocations do not count). An
-- active appointment moved before this migration gets the moves its event log records.
ALTER TABLE appointments ADD COLUMN reschedules BIGINT NOT NULL DEFAULT 0 CHECK (reschedules >= 0);
UPDATE appointments SET reschedules = (
    SELECT COUNT(*) FROM events e
    WHERE e.subject = appointments.tracking_code AND e.kind = 'appointment_rescheduled')
WHERE status IN ('booked', 'checked_in');

-- A citizen's own cancellations are the log's `appointment_cancelled` events whose actor is
-- the citizen (an administrator's cancellation has `admin:<name>` as its actor). The writer
-- counts those in the window for the citizens of a batch's cancellations; this index holds
-- only those events. `actor` is compared as stored (COLLATE "C", like the other codes the
-- writer looks up).
ALTER TABLE events ALTER COLUMN actor TYPE TEXT COLLATE "C";
CREATE INDEX events_cancellations_by_actor ON events (actor, at)
    WHERE kind = 'appointment_cancelled';

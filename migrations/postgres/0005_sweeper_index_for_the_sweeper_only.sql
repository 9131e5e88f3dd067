-- The writer reads its batch's citizens' live holds with
--   WHERE national_code = ANY($1) AND status = 'live'
-- and both partial indexes on holds matched that predicate. A plan made while the table was
-- small (the first batches of a pooled connection, whose prepared statements live as long as
-- it does; and until ANALYZE ever runs) chose the sweeper's index and then read every live
-- hold, and every index entry of a hold that was once live and not yet vacuumed, in every
-- batch: 62 pages for one citizen among 4,000 live holds instead of 3. The sweeper's index
-- now also requires `expires_at IS NOT NULL` (always true: the column is NOT NULL), which the
-- sweeper's `expires_at <= $1` implies and a lookup by citizen does not, so only the citizen
-- index can serve that lookup.
DROP INDEX holds_live_expiry;
CREATE INDEX holds_live_expiry ON holds (expires_at) WHERE status = 'live' AND expires_at IS NOT NULL;

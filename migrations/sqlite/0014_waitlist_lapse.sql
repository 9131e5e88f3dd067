-- The sweeper lapses waiting entries whose last date has passed (issue 21): it finds them
-- by this index, oldest last date first.
CREATE INDEX waitlist_entries_lapse ON waitlist_entries (latest_at) WHERE status = 'waiting';

-- The waitlist for freed seats and the anti-trading release (issue 21). See the PostgreSQL
-- migration of the same number for what each table is; CHECKs are OR chains (see 0004).

CREATE TABLE waitlist_entries (
    id             TEXT PRIMARY KEY,
    national_code  TEXT NOT NULL,
    service        TEXT NOT NULL,
    application_id TEXT NOT NULL,
    payment_id     TEXT NOT NULL,
    auto_accept    INTEGER NOT NULL CHECK (auto_accept = 0 OR auto_accept = 1),
    earliest_at    INTEGER NOT NULL,
    latest_at      INTEGER NOT NULL,
    part_of_day    TEXT NOT NULL CHECK (part_of_day = 'morning' OR part_of_day = 'afternoon'
                                        OR part_of_day = 'any'),
    limits_json    TEXT NOT NULL,
    status         TEXT NOT NULL CHECK (status = 'waiting' OR status = 'offered' OR status = 'booked'
                                        OR status = 'left' OR status = 'lapsed'),
    offer_hold_id  TEXT,
    tracking_code  TEXT,
    joined_at      INTEGER NOT NULL,
    updated_at     INTEGER NOT NULL
);
CREATE UNIQUE INDEX waitlist_one_active ON waitlist_entries (national_code, service)
    WHERE status = 'waiting' OR status = 'offered';
CREATE INDEX waitlist_entries_citizen ON waitlist_entries (national_code);
CREATE INDEX waitlist_entries_offer ON waitlist_entries (offer_hold_id) WHERE offer_hold_id IS NOT NULL;

CREATE TABLE waitlist_offices (
    office_id TEXT NOT NULL,
    joined_at INTEGER NOT NULL,
    entry_id  TEXT NOT NULL,
    PRIMARY KEY (office_id, joined_at, entry_id)
) WITHOUT ROWID;
CREATE INDEX waitlist_offices_entry ON waitlist_offices (entry_id);

CREATE TABLE seat_releases (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    slot_id    INTEGER NOT NULL,
    release_at INTEGER NOT NULL,
    freed_by   TEXT,
    status     TEXT NOT NULL CHECK (status = 'pending' OR status = 'done'),
    created_at INTEGER NOT NULL
);
CREATE INDEX seat_releases_due ON seat_releases (release_at) WHERE status = 'pending';
CREATE INDEX seat_releases_slot ON seat_releases (slot_id) WHERE status = 'pending';

-- The waitlist for freed seats and the anti-trading release (issue 21).

-- One entry per join. `waiting` and `offered` are active: one active entry per citizen and
-- service (`waitlist_one_active`). The limits are kept as given (`limits_json`) and as the
-- writer checks them (a start range and a part of the day); the offices they accept are in
-- `waitlist_offices`.
CREATE TABLE waitlist_entries (
    id             TEXT COLLATE "C" PRIMARY KEY,
    national_code  TEXT COLLATE "C" NOT NULL,
    service        TEXT COLLATE "C" NOT NULL,
    application_id TEXT COLLATE "C" NOT NULL,
    payment_id     TEXT COLLATE "C" NOT NULL,
    auto_accept    BIGINT NOT NULL CHECK (auto_accept IN (0, 1)),
    earliest_at    BIGINT NOT NULL,
    latest_at      BIGINT NOT NULL,
    part_of_day    TEXT NOT NULL CHECK (part_of_day IN ('morning', 'afternoon', 'any')),
    limits_json    TEXT NOT NULL,
    status         TEXT NOT NULL CHECK (status IN ('waiting', 'offered', 'booked', 'left', 'lapsed')),
    offer_hold_id  TEXT COLLATE "C",
    tracking_code  TEXT COLLATE "C",
    joined_at      BIGINT NOT NULL,
    updated_at     BIGINT NOT NULL
);
CREATE UNIQUE INDEX waitlist_one_active ON waitlist_entries (national_code, service)
    WHERE status IN ('waiting', 'offered');
CREATE INDEX waitlist_entries_citizen ON waitlist_entries (national_code);
CREATE INDEX waitlist_entries_offer ON waitlist_entries (offer_hold_id) WHERE offer_hold_id IS NOT NULL;

-- The offices an active entry accepts (at most 200 each), earliest joined first per office:
-- the freeing path finds a freed slot's waiters with an index lookup. Rows go when the entry
-- ends (booked, left, lapsed).
CREATE TABLE waitlist_offices (
    office_id TEXT COLLATE "C" NOT NULL,
    joined_at BIGINT NOT NULL,
    entry_id  TEXT COLLATE "C" NOT NULL,
    PRIMARY KEY (office_id, joined_at, entry_id)
);
CREATE INDEX waitlist_offices_entry ON waitlist_offices (entry_id);

-- A seat an applicant gave up that no waiter took: still counted in `slots.taken` while
-- `pending`, until `release_at` (a random delay), then offered to the waiters or freed.
CREATE TABLE seat_releases (
    id         BIGSERIAL PRIMARY KEY,
    slot_id    BIGINT NOT NULL,
    release_at BIGINT NOT NULL,
    freed_by   TEXT COLLATE "C",
    status     TEXT NOT NULL CHECK (status IN ('pending', 'done')),
    created_at BIGINT NOT NULL
);
CREATE INDEX seat_releases_due ON seat_releases (release_at) WHERE status = 'pending';
CREATE INDEX seat_releases_slot ON seat_releases (slot_id) WHERE status = 'pending';

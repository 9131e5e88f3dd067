-- Ballot windows (issue 20): seats of some offices' days collected for a window, then assigned
-- at its close by the exact allocator. While a ballot is open its slots carry
-- `slots.ballot_id` and `slots.opens_at` = 32503680000 (year 3000, `BALLOT_WITHHELD_UNTIL`),
-- so the booking writer refuses their seats with the release waves' rule, on the rows it reads
-- anyway; the close clears both. The seed and the salt of the entry keys stay in this table,
-- never served before the status is `published`.
CREATE TABLE ballots (
    id           TEXT COLLATE "C" PRIMARY KEY,
    service      TEXT COLLATE "C" NOT NULL,
    -- JSON array of province slugs asked for ('[]': all).
    provinces    TEXT NOT NULL,
    -- JSON array of the offices whose slots are withheld.
    office_ids   TEXT NOT NULL,
    -- The pure crate's `BallotTerms`, JSON.
    terms_json   TEXT NOT NULL,
    -- The withheld slot starts, [from_unix, to_unix).
    from_unix    BIGINT NOT NULL,
    to_unix      BIGINT NOT NULL,
    opens_at     BIGINT NOT NULL,
    closes_at    BIGINT NOT NULL,
    seed_hex     TEXT NOT NULL,
    salt_hex     TEXT NOT NULL,
    commitment   TEXT NOT NULL,
    status       TEXT NOT NULL CHECK (status = 'scheduled' OR status = 'open' OR status = 'closing' OR status = 'published'),
    -- The close's lease: one process closes at a time; an expired lease is taken over.
    lease_owner  TEXT,
    lease_until  BIGINT,
    -- Written by the close, in the transaction that publishes.
    offices_json TEXT,
    results_json TEXT,
    created_at   BIGINT NOT NULL,
    published_at BIGINT,
    CHECK (opens_at < closes_at AND closes_at <= from_unix AND from_unix < to_unix)
);
CREATE INDEX ballots_status ON ballots (status);

CREATE TABLE ballot_entries (
    ballot_id        TEXT COLLATE "C" NOT NULL REFERENCES ballots (id),
    national_code    TEXT COLLATE "C" NOT NULL,
    -- SHA-256(salt ‖ national code), the key the export publishes.
    entry_key        TEXT COLLATE "C" NOT NULL,
    application_id   TEXT COLLATE "C" NOT NULL,
    payment_id       TEXT COLLATE "C" NOT NULL,
    home_lat         DOUBLE PRECISION NOT NULL,
    home_lon         DOUBLE PRECISION NOT NULL,
    province         TEXT,
    priority         INTEGER NOT NULL,
    preferences_json TEXT NOT NULL,
    created_at       BIGINT NOT NULL,
    updated_at       BIGINT NOT NULL,
    -- The outcome, written by the close: a placement (tracking code, slot, cost) or a reason
    -- and a waitlist rank.
    tracking_code    TEXT COLLATE "C",
    slot_id          BIGINT,
    office_id        TEXT COLLATE "C",
    start_at         BIGINT,
    distance_km      DOUBLE PRECISION,
    cost_m           BIGINT,
    part_of_day_kept BOOLEAN,
    reason           TEXT,
    waitlist_rank    INTEGER,
    PRIMARY KEY (ballot_id, national_code),
    UNIQUE (ballot_id, entry_key)
);

-- The seats each withheld slot had at the close: the allocation's input, for the export.
CREATE TABLE ballot_seats (
    ballot_id TEXT COLLATE "C" NOT NULL REFERENCES ballots (id),
    slot_id   BIGINT NOT NULL,
    office_id TEXT COLLATE "C" NOT NULL,
    start_at  BIGINT NOT NULL,
    seats     BIGINT NOT NULL CHECK (seats >= 0),
    PRIMARY KEY (ballot_id, slot_id)
);

ALTER TABLE slots ADD COLUMN ballot_id TEXT COLLATE "C";
CREATE INDEX slots_ballot ON slots (ballot_id) WHERE ballot_id IS NOT NULL;

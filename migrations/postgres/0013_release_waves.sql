-- Release waves (issue 22, behaviour 5): seats of a date range (some offices, or all) that
-- open for booking only at `opens_at`. The wave is applied to the slots it covers by one
-- UPDATE when it is created (`slots.opens_at`, `slots.opens_for`), so the writer sees the
-- rule on the slot rows it already reads and locks: no extra query per booking, and every
-- process sees it at once. Pending waves never overlap (checked at creation), so a slot
-- carries at most one pending wave and a cancellation clears its slots.
CREATE TABLE release_waves (
    id           TEXT COLLATE "C" PRIMARY KEY,
    -- NULL: every service.
    service      TEXT COLLATE "C",
    -- JSON array of office ids; '[]' is every office.
    office_ids   TEXT NOT NULL,
    -- JSON array of the province slugs asked for (their offices are in office_ids).
    provinces    TEXT NOT NULL,
    from_date    TEXT NOT NULL,
    to_date      TEXT NOT NULL,
    -- The covered slot starts, [from_unix, to_unix).
    from_unix    BIGINT NOT NULL,
    to_unix      BIGINT NOT NULL,
    opens_at     BIGINT NOT NULL,
    created_at   BIGINT NOT NULL,
    cancelled_at BIGINT,
    CHECK (from_unix < to_unix)
);

ALTER TABLE slots ADD COLUMN opens_at BIGINT;
ALTER TABLE slots ADD COLUMN opens_for TEXT COLLATE "C";

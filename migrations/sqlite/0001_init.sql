-- nobat schema, SQLite flavour. Times are Unix seconds (64-bit integers) so both backends compare them
-- the same way; dates are ISO text. The constraints here are the last line of defence: no code
-- path can overbook a slot or give one person two active appointments for one service.

CREATE TABLE offices (
    id            TEXT PRIMARY KEY,
    name          TEXT NOT NULL,
    kind          TEXT NOT NULL CHECK (kind IN ('pishkhan', 'civil_registry', 'post', 'mobile_station')),
    province      TEXT NOT NULL,
    city          TEXT NOT NULL,
    area_code     TEXT NOT NULL,
    lat           REAL NOT NULL CHECK (lat BETWEEN -90 AND 90),
    lon           REAL NOT NULL CHECK (lon BETWEEN -180 AND 180),
    stations      INTEGER NOT NULL CHECK (stations >= 0),
    services      TEXT NOT NULL,          -- ';'-separated service codes
    calendar_json TEXT NOT NULL,          -- weekly hours, Thursday rule, closures, extra openings
    updated_at    INTEGER NOT NULL
);
CREATE INDEX offices_province ON offices (province);
CREATE INDEX offices_area_code ON offices (area_code);

CREATE TABLE services (
    code             TEXT PRIMARY KEY,
    name_en          TEXT NOT NULL,
    name_fa          TEXT NOT NULL,
    duration_minutes INTEGER NOT NULL CHECK (duration_minutes > 0),
    office_kinds     TEXT NOT NULL
);

CREATE TABLE tariffs (
    jalali_year INTEGER NOT NULL,
    service     TEXT NOT NULL REFERENCES services (code),
    fee_rials   INTEGER NOT NULL CHECK (fee_rials >= 0),
    PRIMARY KEY (jalali_year, service)
);

CREATE TABLE holidays (
    day     TEXT PRIMARY KEY,             -- ISO Gregorian date
    name_fa TEXT NOT NULL,
    name_en TEXT NOT NULL,
    source  TEXT NOT NULL CHECK (source IN ('solar', 'lunar', 'admin'))
);

CREATE TABLE slots (
    id               INTEGER PRIMARY KEY,
    office_id        TEXT NOT NULL REFERENCES offices (id),
    start_at         INTEGER NOT NULL,
    duration_minutes INTEGER NOT NULL CHECK (duration_minutes > 0),
    capacity         INTEGER NOT NULL CHECK (capacity >= 0),
    taken            INTEGER NOT NULL DEFAULT 0,
    -- The invariant: seats taken (live holds + booked appointments) never exceed capacity.
    CHECK (taken >= 0 AND taken <= capacity),
    UNIQUE (office_id, start_at)
);

CREATE TABLE citizens (
    national_code            TEXT PRIMARY KEY,
    birth_certificate_serial TEXT NOT NULL,
    birth_date               TEXT NOT NULL,
    province                 TEXT NOT NULL,
    first_seen_at            INTEGER NOT NULL
);

CREATE TABLE applications (
    id            TEXT PRIMARY KEY,
    national_code TEXT NOT NULL,
    service       TEXT NOT NULL REFERENCES services (code),
    form_json     TEXT NOT NULL,
    eligible      INTEGER NOT NULL CHECK (eligible IN (0, 1)),
    created_at    INTEGER NOT NULL
);
CREATE INDEX applications_national_code ON applications (national_code);

CREATE TABLE payments (
    id             TEXT PRIMARY KEY,
    application_id TEXT NOT NULL REFERENCES applications (id),
    amount_rials   INTEGER NOT NULL CHECK (amount_rials >= 0),
    status         TEXT NOT NULL CHECK (status IN ('pending', 'paid', 'declined')),
    gateway        TEXT NOT NULL,
    created_at     INTEGER NOT NULL
);
CREATE INDEX payments_application ON payments (application_id);

CREATE TABLE holds (
    id             TEXT PRIMARY KEY,
    slot_id        INTEGER NOT NULL REFERENCES slots (id),
    application_id TEXT NOT NULL REFERENCES applications (id),
    national_code  TEXT NOT NULL,
    service        TEXT NOT NULL,
    status         TEXT NOT NULL CHECK (status IN ('live', 'confirmed', 'released', 'expired')),
    created_at     INTEGER NOT NULL,
    expires_at     INTEGER NOT NULL
);
-- One live hold per applicant.
CREATE UNIQUE INDEX holds_one_live_per_citizen ON holds (national_code) WHERE status = 'live';
CREATE INDEX holds_live_expiry ON holds (expires_at) WHERE status = 'live';

CREATE TABLE appointments (
    tracking_code  TEXT PRIMARY KEY,
    slot_id        INTEGER NOT NULL REFERENCES slots (id),
    office_id      TEXT NOT NULL REFERENCES offices (id),
    start_at       INTEGER NOT NULL,
    application_id TEXT NOT NULL REFERENCES applications (id),
    national_code  TEXT NOT NULL,
    service        TEXT NOT NULL,
    payment_id     TEXT REFERENCES payments (id),
    status         TEXT NOT NULL CHECK (status IN
                     ('booked', 'checked_in', 'enrolled', 'no_show', 'cancelled', 'rescheduled',
                      'card_ready', 'delivered')),
    created_at     INTEGER NOT NULL,
    updated_at     INTEGER NOT NULL
);
-- One active appointment per national code and service.
CREATE UNIQUE INDEX appointments_one_active ON appointments (national_code, service)
    WHERE status IN ('booked', 'checked_in');
CREATE INDEX appointments_slot ON appointments (slot_id);
CREATE INDEX appointments_national_code ON appointments (national_code);

-- Append-only: what happened, by whom, when. Triggers refuse edits and deletes.
CREATE TABLE events (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    at           INTEGER NOT NULL,
    actor        TEXT NOT NULL,
    kind         TEXT NOT NULL,
    subject      TEXT NOT NULL,
    payload_json TEXT NOT NULL
);
CREATE INDEX events_subject ON events (subject);
CREATE TRIGGER events_no_update BEFORE UPDATE ON events
BEGIN SELECT RAISE(ABORT, 'events are append-only'); END;
CREATE TRIGGER events_no_delete BEFORE DELETE ON events
BEGIN SELECT RAISE(ABORT, 'events are append-only'); END;

CREATE TABLE idempotency_keys (
    scope           TEXT NOT NULL,        -- who sent it (a citizen), so keys never collide across people
    key             TEXT NOT NULL,
    request_hash    TEXT NOT NULL,
    response_status INTEGER NOT NULL,
    response_body   TEXT NOT NULL,
    created_at      INTEGER NOT NULL,
    PRIMARY KEY (scope, key)
);

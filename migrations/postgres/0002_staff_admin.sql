-- Staff and administration: cards and their pickup visits, the notification outbox, operator
-- tokens (only hashes), and fee overrides by year.

-- The card of an enrolment, written once when biometrics are taken.
CREATE TABLE cards (
    tracking_code        TEXT PRIMARY KEY REFERENCES appointments (tracking_code),
    office_id            TEXT NOT NULL REFERENCES offices (id),
    ready_date           TEXT NOT NULL,          -- ISO Gregorian date
    pickup_tracking_code TEXT REFERENCES appointments (tracking_code),
    created_at           BIGINT NOT NULL
);
CREATE UNIQUE INDEX cards_pickup ON cards (pickup_tracking_code);

-- Notices to applicants, queued in the transaction that caused them; a relay sends them.
-- One notice per appointment and cause: a repeated closure cannot queue twice.
CREATE TABLE outbox (
    id             BIGSERIAL PRIMARY KEY,
    national_code  TEXT NOT NULL,
    application_id TEXT NOT NULL,
    tracking_code  TEXT NOT NULL,
    notice_key     TEXT NOT NULL,
    channel        TEXT NOT NULL CHECK (channel IN ('sms')),
    body           TEXT NOT NULL,
    created_at     BIGINT NOT NULL,
    sent_at        BIGINT,
    UNIQUE (tracking_code, notice_key)
);
CREATE INDEX outbox_unsent ON outbox (id) WHERE sent_at IS NULL;

-- Staff (one office) and admin tokens: the SHA-256 of the token, never the token.
CREATE TABLE operator_tokens (
    token_hash TEXT PRIMARY KEY,
    role       TEXT NOT NULL CHECK (role IN ('staff', 'admin')),
    office_id  TEXT REFERENCES offices (id),
    name       TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    revoked_at BIGINT,
    CHECK ((role = 'staff') = (office_id IS NOT NULL))
);

-- Fees set by an administrator; they win over the built-in table when the catalogue syncs.
CREATE TABLE fee_overrides (
    jalali_year BIGINT NOT NULL,
    service     TEXT NOT NULL REFERENCES services (code),
    fee_rials   BIGINT NOT NULL CHECK (fee_rials >= 0),
    updated_at  BIGINT NOT NULL,
    PRIMARY KEY (jalali_year, service)
);

CREATE INDEX appointments_office_start ON appointments (office_id, start_at);
CREATE INDEX slots_start ON slots (start_at);

-- Security and live administration (issue 24): throttled logins, one paid payment per
-- application, an admin audit log, a version that other processes poll to pick up admin
-- changes, and public ids for operator tokens (so one can be revoked).

-- Failed logins, per national code (`code:` and the code's SHA-256, so the table does not list
-- who tried) and per client address (`addr:` and the address), in fixed windows that start at
-- the first failure. A row whose window is over counts for nothing and is deleted by a janitor.
CREATE TABLE login_failures (
    key          TEXT PRIMARY KEY,
    window_start INTEGER NOT NULL,
    failures     INTEGER NOT NULL CHECK (failures > 0)
);
CREATE INDEX login_failures_window ON login_failures (window_start);

-- One paid payment per application. Payments recorded twice before this migration (two
-- requests racing with different Idempotency-Keys) keep their rows, which are never deleted;
-- every paid one after the first of its application names that first one in `duplicate_of`
-- (a refund is due for it) and is outside the index.
ALTER TABLE payments ADD COLUMN duplicate_of TEXT;
UPDATE payments SET duplicate_of = (
    SELECT f.id FROM payments f WHERE f.application_id = payments.application_id AND f.status = 'paid'
    ORDER BY f.created_at, f.id LIMIT 1)
WHERE status = 'paid' AND id <> (
    SELECT f.id FROM payments f WHERE f.application_id = payments.application_id AND f.status = 'paid'
    ORDER BY f.created_at, f.id LIMIT 1);
CREATE UNIQUE INDEX payments_one_paid ON payments (application_id)
    WHERE status = 'paid' AND duplicate_of IS NULL;

-- Every change an administrator made through the API: who, when, the request (method, path,
-- body) and the status it got. Append-only like the event log.
CREATE TABLE admin_audit (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    at           INTEGER NOT NULL,
    actor        TEXT NOT NULL,
    method       TEXT NOT NULL,
    path         TEXT NOT NULL,
    status       INTEGER NOT NULL,
    request_json TEXT NOT NULL
);
CREATE TRIGGER admin_audit_no_update BEFORE UPDATE ON admin_audit
BEGIN SELECT RAISE(ABORT, 'the admin audit log is append-only'); END;
CREATE TRIGGER admin_audit_no_delete BEFORE DELETE ON admin_audit
BEGIN SELECT RAISE(ABORT, 'the admin audit log is append-only'); END;

-- Bumped with every admin change (in the audit row's transaction); each process polls it and
-- reloads offices, fees and holidays when it moves.
CREATE TABLE config_version (
    id      INTEGER PRIMARY KEY CHECK (id = 1),
    version INTEGER NOT NULL
);
INSERT INTO config_version (id, version) VALUES (1, 0);

-- A token's public id (the first 16 hex digits of its hash), to list and revoke it by.
ALTER TABLE operator_tokens ADD COLUMN token_id TEXT;
UPDATE operator_tokens SET token_id = substr(token_hash, 1, 16);
CREATE UNIQUE INDEX operator_tokens_token_id ON operator_tokens (token_id);
CREATE INDEX operator_tokens_office ON operator_tokens (office_id);

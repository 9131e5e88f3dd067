-- Two appointment indexes no query uses: lookups by citizen go through the partial unique index
-- `appointments_one_active` (national_code, service) and by slot through the office's day
-- (`appointments_office_start`). Every booking paid for both on insert.
DROP INDEX appointments_slot;
DROP INDEX appointments_national_code;

-- Offices, slots, applications and payments are never deleted: refused outright. The booking
-- writer checks what the holds and appointments it inserts point at in the same transaction,
-- and its connection skips the declared foreign keys (PostgreSQL drops them; see its 0003).
CREATE TRIGGER offices_no_delete BEFORE DELETE ON offices
BEGIN SELECT RAISE(ABORT, 'offices rows are never deleted'); END;
CREATE TRIGGER slots_no_delete BEFORE DELETE ON slots
BEGIN SELECT RAISE(ABORT, 'slots rows are never deleted'); END;
CREATE TRIGGER applications_no_delete BEFORE DELETE ON applications
BEGIN SELECT RAISE(ABORT, 'applications rows are never deleted'); END;
CREATE TRIGGER payments_no_delete BEFORE DELETE ON payments
BEGIN SELECT RAISE(ABORT, 'payments rows are never deleted'); END;

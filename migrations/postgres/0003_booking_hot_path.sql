-- Two appointment indexes no query uses: lookups by citizen go through the partial unique index
-- `appointments_one_active` (national_code, service) and by slot through the office's day
-- (`appointments_office_start`). Every booking paid for both on insert.
DROP INDEX appointments_slot;
DROP INDEX appointments_national_code;

-- Holds and appointments are inserted only by the booking writer, which checks what they point
-- at in the inserting transaction: the slot row is locked (`FOR UPDATE`); a hold's application
-- is read and must be the citizen's, for the service; an appointment's office is its slot's,
-- and its payment is read and must be paid, for the hold's application and service. Foreign
-- keys checked the same again, one trigger query per row, and took a share lock on each parent
-- row: a third of PostgreSQL's work per booking (hold→confirm bench: 74 → 47 µs of postgres
-- CPU per pair). What they still guarded, that a parent vanishes under its children, is
-- guarded instead by refusing deletes of those parents outright: nothing in nobat deletes an
-- office, a slot, an application or a payment.
ALTER TABLE holds DROP CONSTRAINT holds_slot_id_fkey;
ALTER TABLE holds DROP CONSTRAINT holds_application_id_fkey;
ALTER TABLE appointments DROP CONSTRAINT appointments_slot_id_fkey;
ALTER TABLE appointments DROP CONSTRAINT appointments_office_id_fkey;
ALTER TABLE appointments DROP CONSTRAINT appointments_application_id_fkey;
ALTER TABLE appointments DROP CONSTRAINT appointments_payment_id_fkey;

CREATE FUNCTION refuse_delete() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN RAISE EXCEPTION '% rows are never deleted', TG_TABLE_NAME; END $$;
CREATE TRIGGER offices_no_delete BEFORE DELETE OR TRUNCATE ON offices
FOR EACH STATEMENT EXECUTE FUNCTION refuse_delete();
CREATE TRIGGER slots_no_delete BEFORE DELETE OR TRUNCATE ON slots
FOR EACH STATEMENT EXECUTE FUNCTION refuse_delete();
CREATE TRIGGER applications_no_delete BEFORE DELETE OR TRUNCATE ON applications
FOR EACH STATEMENT EXECUTE FUNCTION refuse_delete();
CREATE TRIGGER payments_no_delete BEFORE DELETE OR TRUNCATE ON payments
FOR EACH STATEMENT EXECUTE FUNCTION refuse_delete();

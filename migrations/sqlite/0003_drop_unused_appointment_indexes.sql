-- Two appointment indexes no query uses: lookups by citizen go through the partial unique index
-- `appointments_one_active` (national_code, service) and by slot through the office's day
-- (`appointments_office_start`). Every booking paid for both on insert.
DROP INDEX appointments_slot;
DROP INDEX appointments_national_code;

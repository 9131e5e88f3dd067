-- The close of a national ballot (issue 20) updates each of a million entries once (its
-- outcome) and each of 1.5 million withheld slots once (the seats it placed and the
-- withholding lifted), all in one transaction. An updated row whose new version fits on its
-- page and changes no indexed column is a heap-only tuple (HOT): no new entry in any of the
-- table's indexes. A full page sends the new version to another page with an entry in every
-- index (at 1 M: the entries' two keys on random text, the slots' three), which was most of
-- the close's writes.
--
-- Room on each page for a second version of every row: the old versions are still live to
-- other transactions until the close commits, so none can be pruned meanwhile. An entry grows
-- by its outcome (~60 bytes on ~280), hence 40; a slot keeps its width. Applies to the pages
-- written from now on (the entries of a ballot are written after it opens).
ALTER TABLE ballot_entries SET (fillfactor = 40);
ALTER TABLE slots SET (fillfactor = 50);

-- `slots.ballot_id` leaves its index: an update of an indexed column is never HOT, and the
-- close clears it on every withheld slot. It is read by the ballot's open (with the office
-- and date filter, served by `slots_office_id_start_at_key`) and its close (once, a scan).
DROP INDEX slots_ballot;

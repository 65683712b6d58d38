-- ID numbers are shown fully masked (enrol::id_number: a resident ID number with
-- its region and sequence shown left ~1,700 candidates for the birth date; with
-- the device secret that is a fraction of a second). Re-mask the stored forms:
-- every character a star, the length kept. The keyed hash is unchanged, so
-- lookups, imports and the desk's "check an ID number" keep working.
UPDATE person
   SET id_masked = substr('********************************', 1, length(id_masked))
 WHERE id_masked IS NOT NULL AND id_masked GLOB '*[^*]*';

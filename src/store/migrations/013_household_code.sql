-- Household + face gates (issue 15, item 4): the short number a resident keys
-- on a household gate's keypad for their household, assigned by the console
-- or the CLI (1 to 5 digits; visitor PINs are longer). NULL: none assigned
-- (the household is still reached by its address, keyed as 3*2*501).
-- A plain column of `household`, so the site change log carries it with the row.

ALTER TABLE household ADD COLUMN code TEXT CHECK (code IS NULL OR (length(code) BETWEEN 1 AND 5 AND code NOT GLOB '*[^0-9]*'));
CREATE UNIQUE INDEX household_code ON household(code);

-- The daemon's register now reads households (codes, addresses, members):
-- a change to one reloads it like any other register change.
CREATE TRIGGER household_ai_register_version AFTER INSERT ON household
BEGIN UPDATE register_version SET version = version + 1 WHERE id = 1; END;
CREATE TRIGGER household_au_register_version AFTER UPDATE ON household
BEGIN UPDATE register_version SET version = version + 1 WHERE id = 1; END;
CREATE TRIGGER household_ad_register_version AFTER DELETE ON household
BEGIN UPDATE register_version SET version = version + 1 WHERE id = 1; END;

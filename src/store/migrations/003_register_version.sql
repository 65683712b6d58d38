-- A counter bumped by every change to the registers, so the running daemon
-- notices a change made by another process (the CLI, the console) with one
-- cheap query and reloads its in-memory snapshot.

CREATE TABLE register_version (
    id       INTEGER PRIMARY KEY CHECK (id = 1),
    version  INTEGER NOT NULL
);
INSERT INTO register_version (id, version) VALUES (1, 0);

CREATE TRIGGER person_ai_register_version AFTER INSERT ON person
BEGIN UPDATE register_version SET version = version + 1 WHERE id = 1; END;
CREATE TRIGGER person_au_register_version AFTER UPDATE ON person
BEGIN UPDATE register_version SET version = version + 1 WHERE id = 1; END;
CREATE TRIGGER person_ad_register_version AFTER DELETE ON person
BEGIN UPDATE register_version SET version = version + 1 WHERE id = 1; END;
CREATE TRIGGER card_ai_register_version AFTER INSERT ON card
BEGIN UPDATE register_version SET version = version + 1 WHERE id = 1; END;
CREATE TRIGGER card_au_register_version AFTER UPDATE ON card
BEGIN UPDATE register_version SET version = version + 1 WHERE id = 1; END;
CREATE TRIGGER card_ad_register_version AFTER DELETE ON card
BEGIN UPDATE register_version SET version = version + 1 WHERE id = 1; END;
CREATE TRIGGER vehicle_ai_register_version AFTER INSERT ON vehicle
BEGIN UPDATE register_version SET version = version + 1 WHERE id = 1; END;
CREATE TRIGGER vehicle_au_register_version AFTER UPDATE ON vehicle
BEGIN UPDATE register_version SET version = version + 1 WHERE id = 1; END;
CREATE TRIGGER vehicle_ad_register_version AFTER DELETE ON vehicle
BEGIN UPDATE register_version SET version = version + 1 WHERE id = 1; END;
CREATE TRIGGER visitor_pass_ai_register_version AFTER INSERT ON visitor_pass
BEGIN UPDATE register_version SET version = version + 1 WHERE id = 1; END;
CREATE TRIGGER visitor_pass_au_register_version AFTER UPDATE ON visitor_pass
BEGIN UPDATE register_version SET version = version + 1 WHERE id = 1; END;
CREATE TRIGGER visitor_pass_ad_register_version AFTER DELETE ON visitor_pass
BEGIN UPDATE register_version SET version = version + 1 WHERE id = 1; END;
CREATE TRIGGER access_group_ai_register_version AFTER INSERT ON access_group
BEGIN UPDATE register_version SET version = version + 1 WHERE id = 1; END;
CREATE TRIGGER access_group_au_register_version AFTER UPDATE ON access_group
BEGIN UPDATE register_version SET version = version + 1 WHERE id = 1; END;
CREATE TRIGGER access_group_ad_register_version AFTER DELETE ON access_group
BEGIN UPDATE register_version SET version = version + 1 WHERE id = 1; END;
CREATE TRIGGER access_group_window_ai_register_version AFTER INSERT ON access_group_window
BEGIN UPDATE register_version SET version = version + 1 WHERE id = 1; END;
CREATE TRIGGER access_group_window_au_register_version AFTER UPDATE ON access_group_window
BEGIN UPDATE register_version SET version = version + 1 WHERE id = 1; END;
CREATE TRIGGER access_group_window_ad_register_version AFTER DELETE ON access_group_window
BEGIN UPDATE register_version SET version = version + 1 WHERE id = 1; END;
CREATE TRIGGER access_group_member_ai_register_version AFTER INSERT ON access_group_member
BEGIN UPDATE register_version SET version = version + 1 WHERE id = 1; END;
CREATE TRIGGER access_group_member_au_register_version AFTER UPDATE ON access_group_member
BEGIN UPDATE register_version SET version = version + 1 WHERE id = 1; END;
CREATE TRIGGER access_group_member_ad_register_version AFTER DELETE ON access_group_member
BEGIN UPDATE register_version SET version = version + 1 WHERE id = 1; END;

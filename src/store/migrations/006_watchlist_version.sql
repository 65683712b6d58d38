-- The station's watchlist is part of what the gates decide on: a change to it
-- bumps the register version like any register change, so running gates
-- reload within the watcher's poll.

CREATE TRIGGER watchlist_ai_register_version AFTER INSERT ON watchlist
BEGIN UPDATE register_version SET version = version + 1 WHERE id = 1; END;
CREATE TRIGGER watchlist_au_register_version AFTER UPDATE ON watchlist
BEGIN UPDATE register_version SET version = version + 1 WHERE id = 1; END;
CREATE TRIGGER watchlist_ad_register_version AFTER DELETE ON watchlist
BEGIN UPDATE register_version SET version = version + 1 WHERE id = 1; END;

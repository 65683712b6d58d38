-- The registry signs each sealed site-log entry after its transaction
-- (`site::registry::sign_pending`), looking for `sig IS NULL`. Without an
-- index that read every entry of the uncompacted log, past each large body to
-- its signature: 5 ms per change at a few thousand entries (BENCHMARKS.md,
-- "The registry's cost per change"). The partial index holds only the few
-- unsigned entries.
CREATE INDEX site_log_unsigned ON site_log (seq) WHERE sig IS NULL;

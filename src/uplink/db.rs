//! The uplink's handle on the database: the process's one writer for what
//! it changes (outbox deletions, the quota, nonces, audit rows, the
//! watchlist) and read-only connections for what it only reads (the outbox
//! queue, `query_events`, heartbeat figures), each used from blocking
//! threads so a slow fsync never stalls the async runtime.

use anyhow::{Context, Result};

use crate::store::{Readers, Store, Writer};

#[derive(Clone)]
pub(crate) struct Db {
    writer: Writer,
    readers: Readers,
}

impl Db {
    pub fn new(writer: Writer, readers: Readers) -> Db {
        Db { writer, readers }
    }

    /// Runs `f` with the writer on a blocking thread.
    pub async fn call<R, F>(&self, f: F) -> Result<R>
    where
        R: Send + 'static,
        F: FnOnce(&Store) -> Result<R> + Send + 'static,
    {
        let writer = self.writer.clone();
        tokio::task::spawn_blocking(move || f(&writer.lock()))
            .await
            .context("database task was cancelled")?
    }

    /// Runs `f` on a read-only connection on a blocking thread; never waits
    /// for the writer.
    pub async fn read<R, F>(&self, f: F) -> Result<R>
    where
        R: Send + 'static,
        F: FnOnce(&rusqlite::Connection) -> Result<R> + Send + 'static,
    {
        let readers = self.readers.clone();
        tokio::task::spawn_blocking(move || readers.read(f)?)
            .await
            .context("database task was cancelled")?
    }
}

//! The uplink's handle on the database: its own connection, used from
//! blocking threads so a slow fsync never stalls the async runtime.

use std::sync::{Arc, Mutex};

use anyhow::{anyhow, Context, Result};

use crate::store::Store;

#[derive(Clone)]
pub(crate) struct Db(Arc<Mutex<Store>>);

impl Db {
    pub fn new(store: Store) -> Db {
        Db(Arc::new(Mutex::new(store)))
    }

    /// Runs `f` with the store on a blocking thread.
    pub async fn call<R, F>(&self, f: F) -> Result<R>
    where
        R: Send + 'static,
        F: FnOnce(&Store) -> Result<R> + Send + 'static,
    {
        let inner = self.0.clone();
        tokio::task::spawn_blocking(move || {
            let store = inner
                .lock()
                .map_err(|_| anyhow!("database handle poisoned by an earlier panic"))?;
            f(&store)
        })
        .await
        .context("database task was cancelled")?
    }
}

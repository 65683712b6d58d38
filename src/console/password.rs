//! Console passwords: the policy a new password must meet, and Argon2id
//! hashing (PHC strings with a random salt). Hashing is slow on purpose and
//! takes about 19 MiB; the console hashes only on [`HASHES_AT_ONCE`]
//! dedicated threads behind a short queue ([`hash_queued`],
//! [`verify_queued`]), so a burst of sign-ins cannot exhaust the Pi's memory:
//! what does not fit in the queue is refused at once ([`Busy`]).

use anyhow::{anyhow, Result};
use argon2::password_hash::{rand_core::OsRng, PasswordHash, SaltString};
use argon2::Argon2;

/// Shortest password accepted.
pub const MIN_LENGTH: usize = 10;

/// Why a proposed password is refused, in English (the page translates).
pub fn check_policy(account: &str, password: &str) -> Result<(), &'static str> {
    let n = password.chars().count();
    if n < MIN_LENGTH {
        return Err("the password is shorter than 10 characters");
    }
    if n > 128 {
        return Err("the password is longer than 128 characters");
    }
    if password.trim().eq_ignore_ascii_case(account.trim()) {
        return Err("the password is the account name");
    }
    if password.chars().all(|c| password.starts_with(c)) {
        return Err("the password repeats one character");
    }
    Ok(())
}

/// Argon2 hashes that run at once, at most (each holds about 19 MiB).
pub const HASHES_AT_ONCE: usize = 2;
/// Hashes that may wait for a free thread; more are refused with [`Busy`].
pub const HASH_QUEUE: usize = 8;

/// The hashing threads are all busy and the queue is full.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Busy;

impl std::fmt::Display for Busy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{HASHES_AT_ONCE} password checks are running and {HASH_QUEUE} are waiting; try again in a few seconds"
        )
    }
}

type Job = Box<dyn FnOnce() + Send>;

/// The hashing threads and their queue.
struct Pool {
    jobs: std::sync::mpsc::SyncSender<Job>,
}

/// Hashes running now, and the most ever seen running together.
static RUNNING: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
static PEAK: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

fn pool() -> &'static Pool {
    static POOL: std::sync::OnceLock<Pool> = std::sync::OnceLock::new();
    POOL.get_or_init(|| {
        let (jobs, queue) = std::sync::mpsc::sync_channel::<Job>(HASH_QUEUE);
        let queue = std::sync::Arc::new(std::sync::Mutex::new(queue));
        for i in 0..HASHES_AT_ONCE {
            let queue = queue.clone();
            let spawned = std::thread::Builder::new()
                .name(format!("password-hash-{i}"))
                .spawn(move || loop {
                    let job = match queue.lock() {
                        Ok(q) => q.recv(),
                        Err(poisoned) => poisoned.into_inner().recv(),
                    };
                    match job {
                        Ok(job) => {
                            let now = RUNNING.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1;
                            let peak = PEAK
                                .fetch_max(now, std::sync::atomic::Ordering::SeqCst)
                                .max(now);
                            crate::metrics::set(
                                "gatehouse_console_password_hashes_peak",
                                "The most console password hashes run at once since start",
                                &[],
                                peak as f64,
                            );
                            job();
                            RUNNING.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
                        }
                        Err(_) => return,
                    }
                });
            if let Err(e) = spawned {
                tracing::error!("cannot start a password hashing thread: {e}");
            }
        }
        Pool { jobs }
    })
}

/// The most hashes the pool has run at the same moment since start (also
/// the `gatehouse_console_password_hashes_peak` metric).
#[cfg(test)]
fn peak_hashes_at_once() -> usize {
    PEAK.load(std::sync::atomic::Ordering::SeqCst)
}

/// Hands `work` to a hashing thread, or `Busy` when the queue is full.
fn submit<T: Send + 'static>(
    work: impl FnOnce() -> T + Send + 'static,
) -> Result<tokio::sync::oneshot::Receiver<T>, Busy> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    let job: Job = Box::new(move || {
        let _ = tx.send(work());
    });
    pool().jobs.try_send(job).map_err(|_| {
        crate::metrics::inc(
            "gatehouse_console_password_busy_total",
            "Console password checks refused because the hashing queue was full",
            &[],
        );
        Busy
    })?;
    Ok(rx)
}

/// Runs `work` on a hashing thread, or `Busy` when the queue is full.
async fn queued<T: Send + 'static>(work: impl FnOnce() -> T + Send + 'static) -> Result<T, Busy> {
    // A job is dropped unanswered only if its thread died: say busy.
    submit(work)?.await.map_err(|_| Busy)
}

/// [`hash`] on a hashing thread.
pub async fn hash_queued(password: String) -> Result<Result<String>, Busy> {
    queued(move || hash(&password)).await
}

/// [`verify`] on a hashing thread.
pub async fn verify_queued(password: String, phc: String) -> Result<bool, Busy> {
    queued(move || verify(&password, &phc)).await
}

/// The most Argon2 memory one hash may ask for (256 MiB; the default is 19 MiB).
const MAX_BLOCKS: usize = 256 * 1024;

thread_local! {
    /// Each hashing thread's Argon2 memory, allocated once and reused: a
    /// fresh 19 MiB per hash left the allocator holding several of them
    /// (measured: 10 sequential sign-ins grew the daemon by 150 MB).
    static MEMORY: std::cell::RefCell<Vec<argon2::Block>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Argon2 of `password` and `salt` into `out`, on this thread's memory.
fn argon2_into(argon: &Argon2, password: &[u8], salt: &[u8], out: &mut [u8]) -> Result<()> {
    let need = argon.params().block_count();
    if need > MAX_BLOCKS {
        return Err(anyhow!(
            "the stored hash asks for {} MiB of memory, more than allowed",
            need / 1024
        ));
    }
    MEMORY.with(|memory| {
        let mut memory = memory.borrow_mut();
        if memory.len() < need {
            memory.resize(need, argon2::Block::default());
        }
        argon
            .hash_password_into_with_memory(password, salt, out, &mut memory[..need])
            .map_err(|e| anyhow!("cannot hash the password: {e}"))
    })
}

/// An Argon2id PHC string for `password` (the crate's default parameters).
pub fn hash(password: &str) -> Result<String> {
    let salt = SaltString::generate(&mut OsRng);
    let argon = Argon2::default();
    let mut salt_buf = [0u8; 64];
    let salt_bytes = salt
        .as_salt()
        .decode_b64(&mut salt_buf)
        .map_err(|e| anyhow!("cannot hash the password: {e}"))?;
    let mut out = [0u8; argon2::Params::DEFAULT_OUTPUT_LEN];
    argon2_into(&argon, password.as_bytes(), salt_bytes, &mut out)?;
    let phc = PasswordHash {
        algorithm: argon2::Algorithm::Argon2id.ident(),
        version: Some(argon2::Version::V0x13.into()),
        params: argon2::password_hash::ParamsString::try_from(argon.params())
            .map_err(|e| anyhow!("cannot hash the password: {e}"))?,
        salt: Some(salt.as_salt()),
        hash: Some(
            argon2::password_hash::Output::new(&out)
                .map_err(|e| anyhow!("cannot hash the password: {e}"))?,
        ),
    };
    Ok(phc.to_string())
}

/// Whether `password` matches the stored PHC string (false for a malformed one).
pub fn verify(password: &str, phc: &str) -> bool {
    let check = || -> Result<bool> {
        let parsed = PasswordHash::new(phc).map_err(|e| anyhow!("{e}"))?;
        let (Some(salt), Some(expected)) = (parsed.salt, parsed.hash) else {
            return Ok(false);
        };
        let algorithm =
            argon2::Algorithm::try_from(parsed.algorithm).map_err(|e| anyhow!("{e}"))?;
        let version = match parsed.version {
            Some(v) => argon2::Version::try_from(v).map_err(|e| anyhow!("{e}"))?,
            None => argon2::Version::default(),
        };
        let params = argon2::Params::try_from(&parsed).map_err(|e| anyhow!("{e}"))?;
        let argon = Argon2::new(algorithm, version, params);
        let mut salt_buf = [0u8; 64];
        let salt_bytes = salt.decode_b64(&mut salt_buf).map_err(|e| anyhow!("{e}"))?;
        let mut out = vec![0u8; expected.len()];
        argon2_into(&argon, password.as_bytes(), salt_bytes, &mut out)?;
        // Output's equality does not stop at the first differing byte.
        Ok(argon2::password_hash::Output::new(&out).map_err(|e| anyhow!("{e}"))? == expected)
    };
    check().unwrap_or(false)
}

/// A hash to verify against when the account does not exist, so a wrong
/// name takes as long as a wrong password: the default parameters (the
/// cost of every stored hash) with a fixed salt and an output no password
/// produces in practice. A literal, so it is never computed outside the
/// hashing threads.
pub fn decoy() -> &'static str {
    "$argon2id$v=19$m=19456,t=2,p=1$ZGVjb3kgc2FsdCAwMDAx$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_verify_only_the_right_password_and_are_salted() {
        let a = hash("correct horse battery").unwrap();
        let b = hash("correct horse battery").unwrap();
        assert!(a.starts_with("$argon2id$"));
        assert_ne!(a, b, "each hash has its own salt");
        assert!(verify("correct horse battery", &a));
        assert!(!verify("correct horse batterY", &a));
        assert!(!verify("anything", "not a hash"));
        // The same format as the crate's own hasher and verifier (stored hashes keep working).
        use argon2::password_hash::{PasswordHasher, PasswordVerifier};
        let theirs = Argon2::default()
            .hash_password(b"correct horse battery", &SaltString::generate(&mut OsRng))
            .unwrap()
            .to_string();
        assert!(verify("correct horse battery", &theirs));
        assert!(!verify("correct horse batterY", &theirs));
        assert!(Argon2::default()
            .verify_password(b"correct horse battery", &PasswordHash::new(&a).unwrap())
            .is_ok());
        // The decoy costs what a real hash costs and matches nothing.
        let real = PasswordHash::new(&a).unwrap();
        let fake = PasswordHash::new(decoy()).unwrap();
        assert_eq!(real.params, fake.params);
        assert!(!verify("decoy password, never valid", decoy()));
    }

    #[tokio::test]
    async fn never_more_than_two_hashes_run_at_once_and_the_overflow_is_refused() {
        let phc = hash("correct horse battery").unwrap();
        // Two jobs that hold both threads until released.
        let (release, held) = std::sync::mpsc::channel::<()>();
        let held = std::sync::Arc::new(std::sync::Mutex::new(held));
        let blockers: Vec<_> = (0..HASHES_AT_ONCE)
            .map(|_| {
                let held = held.clone();
                submit(move || {
                    let _ = held.lock().map(|h| h.recv());
                })
                .expect("the threads are free")
            })
            .collect();
        while RUNNING.load(std::sync::atomic::Ordering::SeqCst) < HASHES_AT_ONCE {
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        // The queue takes HASH_QUEUE more; the next is refused at once.
        let waiting: Vec<_> = (0..HASH_QUEUE)
            .map(|i| {
                let (given, phc) = (format!("wrong guess {i}"), phc.clone());
                submit(move || verify(&given, &phc)).expect("room in the queue")
            })
            .collect();
        let refused = submit(|| verify("one too many", "x"));
        assert_eq!(refused.err(), Some(Busy));
        for _ in &blockers {
            release.send(()).unwrap();
        }
        for b in blockers {
            b.await.unwrap();
        }
        for w in waiting {
            assert!(!w.await.unwrap(), "a wrong guess never matches");
        }
        assert_eq!(peak_hashes_at_once(), HASHES_AT_ONCE);
        // Once the burst is over, a check goes through again.
        assert_eq!(
            verify_queued("correct horse battery".into(), phc).await,
            Ok(true)
        );
    }

    #[test]
    fn policy_refuses_short_name_like_and_repeated_passwords() {
        assert!(check_policy("wang", "short").is_err());
        assert!(check_policy("wangmanager", "WangManager").is_err());
        assert!(check_policy("wang", "aaaaaaaaaaaa").is_err());
        assert!(check_policy("wang", "门禁 2025 清波小区").is_ok());
    }
}

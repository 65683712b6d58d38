//! Who is signed in and what they may do: sessions (random tokens, kept in
//! the daemon's memory, ending after a quiet spell or a fixed lifetime), the
//! per-session CSRF token, the sign-in rate limit, the one-time setup token
//! and the role → permission table.
//!
//! Everything here takes the current `Instant` as an argument, so the rules
//! are tested without waiting.

use std::collections::{HashMap, VecDeque};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use base64::Engine;
use rand::RngCore;
use sha2::{Digest, Sha256};

use crate::store::console::ConsoleRole;

/// A session ends this long after sign-in whatever the activity.
pub const MAX_SESSION_AGE: Duration = Duration::from_secs(12 * 3600);
/// Failed sign-ins counted per address and per account name …
pub const LOGIN_WINDOW: Duration = Duration::from_secs(15 * 60);
/// … and how many are allowed in that window before attempts are refused.
pub const LOGIN_MAX_FAILURES: usize = 5;
/// Keys the limiter remembers at most (addresses from anyone on the LAN).
const LIMITER_MAX_KEYS: usize = 10_000;

/// What a page or action needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Perm {
    /// Residents, households, cards, vehicles (read and change).
    Register,
    /// The spreadsheet import.
    Import,
    /// Issue, list and revoke visitor passes.
    Visitors,
    /// Open a gate by hand, with a reason.
    OpenGate,
    /// The live event stream.
    LiveEvents,
    /// Entry-log search and CSV export.
    Logs,
    /// The audit log.
    Audit,
    /// Device status.
    Status,
    /// Console accounts.
    Accounts,
}

/// The role table: managers everything; guards the gate-side work; auditors read logs.
pub fn allows(role: ConsoleRole, perm: Perm) -> bool {
    match role {
        ConsoleRole::Manager => true,
        ConsoleRole::Guard => matches!(
            perm,
            Perm::Visitors | Perm::OpenGate | Perm::LiveEvents | Perm::Status
        ),
        ConsoleRole::Auditor => matches!(
            perm,
            Perm::LiveEvents | Perm::Logs | Perm::Audit | Perm::Status
        ),
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// 32 random bytes, base64url: session ids, CSRF and setup tokens.
pub fn random_token() -> String {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

fn digest(s: &str) -> [u8; 32] {
    Sha256::digest(s.as_bytes()).into()
}

/// Compares two secrets without the time taken depending on where they differ.
pub fn same_secret(a: &str, b: &str) -> bool {
    let (a, b) = (digest(a), digest(b));
    a.iter()
        .zip(b.iter())
        .fold(0u8, |acc, (x, y)| acc | (x ^ y))
        == 0
}

/// A one-line message shown on the next page (after a redirect).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Flash {
    pub ok: bool,
    pub text: String,
}

#[derive(Clone, Debug)]
struct Session {
    account: String,
    role: ConsoleRole,
    csrf: String,
    created: Instant,
    last_seen: Instant,
    flash: Option<Flash>,
}

/// The signed-in account, as one request sees it.
#[derive(Clone, Debug)]
pub struct User {
    pub name: String,
    pub role: ConsoleRole,
    pub csrf: String,
    /// The session's key (hash of its token), to flash or end it.
    pub key: [u8; 32],
    pub flash: Option<Flash>,
}

impl User {
    /// Who the audit log names for what this account does.
    pub fn actor(&self) -> String {
        format!("console:{}", self.name)
    }

    pub fn may(&self, perm: Perm) -> bool {
        allows(self.role, perm)
    }
}

/// Signed-in sessions, by the hash of their token (the token itself is only
/// in the browser's cookie).
pub struct Sessions {
    idle: Duration,
    inner: Mutex<HashMap<[u8; 32], Session>>,
}

impl Sessions {
    pub fn new(idle: Duration) -> Sessions {
        Sessions {
            idle,
            inner: Mutex::new(HashMap::new()),
        }
    }

    fn alive(&self, s: &Session, now: Instant) -> bool {
        now.saturating_duration_since(s.last_seen) < self.idle
            && now.saturating_duration_since(s.created) < MAX_SESSION_AGE
    }

    /// Starts a session; returns the token for the cookie.
    pub fn create(&self, account: &str, role: ConsoleRole, now: Instant) -> String {
        let token = random_token();
        let mut map = lock(&self.inner);
        map.retain(|_, s| self.alive(s, now));
        map.insert(
            digest(&token),
            Session {
                account: account.to_string(),
                role,
                csrf: random_token(),
                created: now,
                last_seen: now,
                flash: None,
            },
        );
        token
    }

    /// The session of `token` if it is still alive; counts as activity and
    /// hands over (removes) its flash message.
    pub fn touch(&self, token: &str, now: Instant) -> Option<User> {
        let key = digest(token);
        let mut map = lock(&self.inner);
        let alive = map.get(&key).map(|s| self.alive(s, now))?;
        if !alive {
            map.remove(&key);
            return None;
        }
        let s = map.get_mut(&key)?;
        s.last_seen = now;
        Some(User {
            name: s.account.clone(),
            role: s.role,
            csrf: s.csrf.clone(),
            key,
            flash: s.flash.take(),
        })
    }

    /// Whether the session is still alive, without counting as activity
    /// (a live event stream is not someone at the keyboard).
    pub fn is_alive(&self, key: &[u8; 32], now: Instant) -> bool {
        lock(&self.inner)
            .get(key)
            .is_some_and(|s| self.alive(s, now))
    }

    pub fn flash(&self, key: &[u8; 32], ok: bool, text: impl Into<String>) {
        if let Some(s) = lock(&self.inner).get_mut(key) {
            s.flash = Some(Flash {
                ok,
                text: text.into(),
            });
        }
    }

    pub fn end(&self, key: &[u8; 32]) {
        lock(&self.inner).remove(key);
    }

    /// Ends every session of an account (disabled, role or password changed).
    pub fn end_account(&self, account: &str) {
        lock(&self.inner).retain(|_, s| !s.account.eq_ignore_ascii_case(account));
    }
}

/// Refuses sign-in attempts from an address or for an account name after
/// [`LOGIN_MAX_FAILURES`] failures within [`LOGIN_WINDOW`].
#[derive(Default)]
pub struct LoginLimiter {
    failures: Mutex<HashMap<String, VecDeque<Instant>>>,
}

impl LoginLimiter {
    pub fn keys(peer: &str, account: &str) -> [String; 2] {
        [
            format!("addr:{peer}"),
            format!("name:{}", account.trim().to_lowercase()),
        ]
    }

    /// `Err(wait)` when one of `keys` has used up its failures.
    pub fn check(&self, keys: &[String], now: Instant) -> Result<(), Duration> {
        let mut map = lock(&self.failures);
        let mut wait = Duration::ZERO;
        for key in keys {
            if let Some(times) = map.get_mut(key) {
                while times
                    .front()
                    .is_some_and(|t| now.saturating_duration_since(*t) >= LOGIN_WINDOW)
                {
                    times.pop_front();
                }
                if times.len() >= LOGIN_MAX_FAILURES {
                    if let Some(oldest) = times.front() {
                        wait = wait.max(LOGIN_WINDOW - now.saturating_duration_since(*oldest));
                    }
                }
            }
        }
        if wait.is_zero() {
            Ok(())
        } else {
            Err(wait)
        }
    }

    pub fn failed(&self, keys: &[String], now: Instant) {
        let mut map = lock(&self.failures);
        if map.len() > LIMITER_MAX_KEYS {
            map.retain(|_, times| {
                times
                    .back()
                    .is_some_and(|t| now.saturating_duration_since(*t) < LOGIN_WINDOW)
            });
        }
        for key in keys {
            let times = map.entry(key.clone()).or_default();
            times.push_back(now);
            while times.len() > LOGIN_MAX_FAILURES {
                times.pop_front();
            }
        }
    }

    pub fn succeeded(&self, keys: &[String]) {
        let mut map = lock(&self.failures);
        for key in keys {
            map.remove(key);
        }
    }
}

/// The one-time setup token, present only while no account exists. Kept as a
/// hash; a restart before setup logs a new one.
#[derive(Default)]
pub struct SetupToken {
    hash: Mutex<Option<[u8; 32]>>,
}

impl SetupToken {
    /// A fresh token; returns it for the setup link.
    pub fn issue(&self) -> String {
        let token = random_token();
        *lock(&self.hash) = Some(digest(&token));
        token
    }

    pub fn is_open(&self) -> bool {
        lock(&self.hash).is_some()
    }

    pub fn matches(&self, given: &str) -> bool {
        let given = digest(given);
        lock(&self.hash).is_some_and(|h| {
            h.iter()
                .zip(given.iter())
                .fold(0u8, |acc, (x, y)| acc | (x ^ y))
                == 0
        })
    }

    /// Setup done: the link stops working.
    pub fn close(&self) {
        *lock(&self.hash) = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guards_and_auditors_reach_only_their_pages() {
        use ConsoleRole::*;
        for perm in [Perm::Register, Perm::Import, Perm::Accounts] {
            assert!(allows(Manager, perm));
            assert!(!allows(Guard, perm), "{perm:?}");
            assert!(!allows(Auditor, perm), "{perm:?}");
        }
        assert!(allows(Guard, Perm::Visitors) && allows(Guard, Perm::OpenGate));
        assert!(!allows(Guard, Perm::Logs) && !allows(Guard, Perm::Audit));
        assert!(allows(Auditor, Perm::Logs) && allows(Auditor, Perm::Audit));
        assert!(!allows(Auditor, Perm::OpenGate) && !allows(Auditor, Perm::Visitors));
    }

    #[test]
    fn session_ends_after_idle_time_and_activity_extends_it() {
        let sessions = Sessions::new(Duration::from_secs(600));
        let t0 = Instant::now();
        let token = sessions.create("wang", ConsoleRole::Manager, t0);
        let user = sessions
            .touch(&token, t0 + Duration::from_secs(500))
            .unwrap();
        assert_eq!(user.name, "wang");
        assert!(sessions
            .touch(&token, t0 + Duration::from_secs(1000))
            .is_some());
        assert!(sessions
            .touch(&token, t0 + Duration::from_secs(1601))
            .is_none());
        assert!(
            sessions.touch(&token, t0).is_none(),
            "an ended session stays ended"
        );
        assert!(sessions.touch("forged", t0).is_none());
    }

    #[test]
    fn session_ends_after_its_maximum_age_however_busy() {
        let sessions = Sessions::new(Duration::from_secs(600));
        let t0 = Instant::now();
        let token = sessions.create("wang", ConsoleRole::Guard, t0);
        let mut t = t0;
        while t < t0 + MAX_SESSION_AGE - Duration::from_secs(300) {
            t += Duration::from_secs(300);
            assert!(sessions.touch(&token, t).is_some());
        }
        assert!(sessions.touch(&token, t0 + MAX_SESSION_AGE).is_none());
    }

    #[test]
    fn each_session_has_its_own_csrf_token_and_flash_is_shown_once() {
        let sessions = Sessions::new(Duration::from_secs(600));
        let t0 = Instant::now();
        let a = sessions
            .touch(&sessions.create("a1", ConsoleRole::Manager, t0), t0)
            .unwrap();
        let token_b = sessions.create("b1", ConsoleRole::Manager, t0);
        let b = sessions.touch(&token_b, t0).unwrap();
        assert_ne!(a.csrf, b.csrf);
        sessions.flash(&b.key, true, "saved");
        assert_eq!(
            sessions.touch(&token_b, t0).unwrap().flash.unwrap().text,
            "saved"
        );
        assert!(sessions.touch(&token_b, t0).unwrap().flash.is_none());
        sessions.end_account("B1");
        assert!(sessions.touch(&token_b, t0).is_none());
    }

    #[test]
    fn sign_in_is_refused_after_five_failures_until_the_window_passes() {
        let limiter = LoginLimiter::default();
        let t0 = Instant::now();
        let keys = LoginLimiter::keys("10.0.0.5", "Wang");
        for i in 0..LOGIN_MAX_FAILURES {
            assert!(limiter.check(&keys, t0).is_ok(), "attempt {i}");
            limiter.failed(&keys, t0 + Duration::from_secs(i as u64));
        }
        let wait = limiter
            .check(&keys, t0 + Duration::from_secs(10))
            .unwrap_err();
        assert!(wait > Duration::from_secs(800), "{wait:?}");
        // Another address trying the same account is refused too …
        let other = LoginLimiter::keys("10.0.0.6", "wang");
        assert!(limiter.check(&other, t0 + Duration::from_secs(10)).is_err());
        // … a different account from a fresh address is not.
        assert!(limiter
            .check(&LoginLimiter::keys("10.0.0.6", "li"), t0)
            .is_ok());
        assert!(limiter
            .check(&keys, t0 + LOGIN_WINDOW + Duration::from_secs(5))
            .is_ok());
    }

    #[test]
    fn setup_token_works_once_and_only_as_issued() {
        let setup = SetupToken::default();
        assert!(!setup.matches(""));
        let token = setup.issue();
        assert!(setup.is_open());
        assert!(!setup.matches("guess"));
        assert!(setup.matches(&token));
        setup.close();
        assert!(!setup.matches(&token));
    }
}

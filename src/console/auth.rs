//! Who is signed in and what they may do: sessions (random tokens, kept in
//! the daemon's memory, ending after a quiet spell or a fixed lifetime), the
//! per-session CSRF token, the sign-in limits (per address and per account,
//! counted before the password is hashed), the one-time setup token
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

/// The sign-in limits. Every attempt is counted *before* its password is
/// hashed (and uncounted if no hash could be run), so a burst of parallel
/// guesses cannot slip past the count.
///
/// - Per address: [`LOGIN_MAX_FAILURES`] failed attempts within
///   [`LOGIN_WINDOW`], then that address waits until the oldest leaves the
///   window (at most 15 minutes). An attacker's address locks out only
///   itself.
/// - Per account: once an account has [`LOGIN_MAX_FAILURES`] failures within
///   the window, attempts on it from addresses it has not signed in from
///   are spaced [`ACCOUNT_SPACING`] apart, however many addresses try.
///   Addresses the account has signed in from (this run, or within
///   [`KNOWN_FOR`] in the audit log at start) are not held back by the
///   account's failures, only by their own: so someone guessing the
///   manager's password from elsewhere cannot keep the manager out of the
///   office PC, and nothing is locked for longer than the window.
#[derive(Default)]
pub struct LoginLimiter {
    inner: Mutex<LimiterState>,
}

/// How far apart attempts on an account from unfamiliar addresses must be
/// once it has had [`LOGIN_MAX_FAILURES`] within [`LOGIN_WINDOW`].
pub const ACCOUNT_SPACING: Duration = Duration::from_secs(60);
/// How long an address a manager signed in from stays familiar.
pub const KNOWN_FOR: Duration = Duration::from_secs(90 * 86400);
/// (account, address) pairs remembered at most.
const KNOWN_MAX: usize = 10_000;

#[derive(Default)]
struct LimiterState {
    /// `addr:<ip>` and `name:<account>` → times of counted attempts.
    failures: HashMap<String, VecDeque<Instant>>,
    /// (account in lower case, address) pairs that signed in.
    known: std::collections::HashSet<(String, String)>,
}

/// An attempt that was counted; hand it back to [`LoginLimiter::succeeded`]
/// or [`LoginLimiter::uncount`].
#[derive(Debug)]
pub struct Attempt {
    account: String,
    peer: String,
    at: Instant,
}

impl LoginLimiter {
    fn addr_key(peer: &str) -> String {
        format!("addr:{peer}")
    }

    fn name_key(account: &str) -> String {
        format!("name:{}", account.trim().to_lowercase())
    }

    /// Remembers that `account` signed in from `peer` (the audit log, at start).
    pub fn remember(&self, account: &str, peer: &str) {
        let mut state = lock(&self.inner);
        if state.known.len() < KNOWN_MAX {
            state
                .known
                .insert((account.trim().to_lowercase(), peer.to_string()));
        }
    }

    fn recent(times: &mut VecDeque<Instant>, now: Instant) -> usize {
        while times
            .front()
            .is_some_and(|t| now.saturating_duration_since(*t) >= LOGIN_WINDOW)
        {
            times.pop_front();
        }
        times.len()
    }

    /// Counts an attempt on `account` from `peer`, or `Err(wait)` when one of
    /// the limits holds it back.
    pub fn attempt(&self, peer: &str, account: &str, now: Instant) -> Result<Attempt, Duration> {
        let mut state = lock(&self.inner);
        let (addr, name) = (Self::addr_key(peer), Self::name_key(account));
        let known = state
            .known
            .contains(&(account.trim().to_lowercase(), peer.to_string()));
        let mut wait = Duration::ZERO;
        if let Some(times) = state.failures.get_mut(&addr) {
            if Self::recent(times, now) >= LOGIN_MAX_FAILURES {
                if let Some(oldest) = times.front() {
                    wait = LOGIN_WINDOW - now.saturating_duration_since(*oldest);
                }
            }
        }
        if !known {
            if let Some(times) = state.failures.get_mut(&name) {
                if Self::recent(times, now) >= LOGIN_MAX_FAILURES {
                    if let Some(last) = times.back() {
                        let since = now.saturating_duration_since(*last);
                        wait = wait.max(ACCOUNT_SPACING.saturating_sub(since));
                    }
                }
            }
        }
        if !wait.is_zero() {
            return Err(wait);
        }
        if state.failures.len() > LIMITER_MAX_KEYS {
            state.failures.retain(|_, times| {
                times
                    .back()
                    .is_some_and(|t| now.saturating_duration_since(*t) < LOGIN_WINDOW)
            });
        }
        for key in [addr, name] {
            let times = state.failures.entry(key).or_default();
            times.push_back(now);
            // Only the newest few matter; an attacker's flood must not grow memory.
            while times.len() > LOGIN_MAX_FAILURES {
                times.pop_front();
            }
        }
        Ok(Attempt {
            account: account.trim().to_lowercase(),
            peer: peer.to_string(),
            at: now,
        })
    }

    /// The attempt could not be checked (no hashing thread free): it does not count.
    pub fn uncount(&self, attempt: Attempt) {
        let mut state = lock(&self.inner);
        for key in [
            Self::addr_key(&attempt.peer),
            Self::name_key(&attempt.account),
        ] {
            if let Some(times) = state.failures.get_mut(&key) {
                if let Some(i) = times.iter().rposition(|t| *t == attempt.at) {
                    times.remove(i);
                }
            }
        }
    }

    /// The right password: the attempt was no failure, the address's
    /// failures are forgiven and the address becomes familiar for the
    /// account. The account's other failures stay (they may be someone
    /// else's).
    pub fn succeeded(&self, attempt: Attempt) {
        let mut state = lock(&self.inner);
        state.failures.remove(&Self::addr_key(&attempt.peer));
        if let Some(times) = state.failures.get_mut(&Self::name_key(&attempt.account)) {
            if let Some(i) = times.iter().rposition(|t| *t == attempt.at) {
                times.remove(i);
            }
        }
        if state.known.len() < KNOWN_MAX {
            state.known.insert((attempt.account, attempt.peer));
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
    fn an_address_is_refused_after_five_attempts_until_the_window_passes() {
        let limiter = LoginLimiter::default();
        let t0 = Instant::now();
        for i in 0..LOGIN_MAX_FAILURES {
            let t = t0 + Duration::from_secs(i as u64 * 100);
            let name = format!("guess{i}");
            assert!(limiter.attempt("10.0.0.5", &name, t).is_ok(), "attempt {i}");
        }
        let t = t0 + Duration::from_secs(500);
        let wait = limiter.attempt("10.0.0.5", "li", t).unwrap_err();
        assert_eq!(wait, LOGIN_WINDOW - Duration::from_secs(500));
        // Another address is not held back by it.
        assert!(limiter.attempt("10.0.0.6", "li", t).is_ok());
        assert!(limiter
            .attempt("10.0.0.5", "li", t0 + LOGIN_WINDOW + Duration::from_secs(1))
            .is_ok());
    }

    #[test]
    fn attempts_are_counted_before_the_password_is_checked() {
        // Parallel guesses all ask before any answer is known: the sixth is
        // refused although none of the five has failed yet.
        let limiter = LoginLimiter::default();
        let t0 = Instant::now();
        let counted: Vec<_> = (0..LOGIN_MAX_FAILURES)
            .map(|_| limiter.attempt("10.0.0.5", "wang", t0).unwrap())
            .collect();
        assert!(limiter.attempt("10.0.0.5", "wang", t0).is_err());
        // An attempt that could not be checked is given back.
        for a in counted {
            limiter.uncount(a);
        }
        assert!(limiter.attempt("10.0.0.5", "wang", t0).is_ok());
    }

    #[test]
    fn guesses_on_an_account_space_out_strangers_but_not_the_managers_own_address() {
        let limiter = LoginLimiter::default();
        let t0 = Instant::now();
        // The manager signed in from the office PC once.
        let ok = limiter.attempt("10.0.0.2", "wang", t0).unwrap();
        limiter.succeeded(ok);
        // Guesses from five addresses (one each) put the account under watch.
        for i in 0..LOGIN_MAX_FAILURES {
            let peer = format!("10.0.9.{i}");
            assert!(limiter.attempt(&peer, "Wang", t0).is_ok());
        }
        let t = t0 + Duration::from_secs(10);
        // A sixth stranger waits for the spacing, whatever its address.
        let wait = limiter.attempt("10.0.9.77", "wang", t).unwrap_err();
        assert_eq!(wait, ACCOUNT_SPACING - Duration::from_secs(10));
        // The office PC is not held back by the account's failures.
        assert!(limiter.attempt("10.0.0.2", "wang", t).is_ok());
        // Nor is a familiar address from the audit log.
        limiter.remember("wang", "10.0.0.3");
        assert!(limiter.attempt("10.0.0.3", "WANG", t).is_ok());
        // The spacing counts from the account's last attempt (any address's).
        let later = t + ACCOUNT_SPACING;
        assert!(limiter.attempt("10.0.9.77", "wang", later).is_ok());
        assert!(limiter.attempt("10.0.9.78", "wang", later).is_err());
        // Nothing is held after the window.
        assert!(limiter
            .attempt("10.0.9.78", "wang", later + LOGIN_WINDOW)
            .is_ok());
    }

    #[test]
    fn a_right_password_forgives_its_address_but_not_the_account() {
        let limiter = LoginLimiter::default();
        let t0 = Instant::now();
        for _ in 0..LOGIN_MAX_FAILURES - 1 {
            limiter.attempt("10.0.0.2", "wang", t0).unwrap();
        }
        let ok = limiter.attempt("10.0.0.2", "wang", t0).unwrap();
        limiter.succeeded(ok);
        for _ in 0..LOGIN_MAX_FAILURES - 1 {
            assert!(limiter.attempt("10.0.0.2", "wang", t0).is_ok());
        }
        // The account saw four failures plus these: a stranger waits.
        assert!(limiter.attempt("10.0.9.1", "wang", t0).is_err());
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

//! Is the system clock synchronised? A Pi has no real-time clock: after a
//! power cut it boots with a stale time until NTP answers. Events record
//! whether the time was trustworthy, and the access decision never denies a
//! resident because of it.

/// Whether the kernel considers the clock synchronised (NTP/PTP disciplined),
/// from `adjtimex(2)`: `TIME_ERROR` means unsynchronised.
pub fn is_synchronised() -> bool {
    // SAFETY: adjtimex with modes = 0 only reads the kernel's state into the struct.
    let mut tx: libc::timex = unsafe { std::mem::zeroed() };
    let state = unsafe { libc::adjtimex(&mut tx) };
    state >= 0 && state != libc::TIME_ERROR && tx.status & libc::STA_UNSYNC == 0
}

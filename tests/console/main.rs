//! Integration tests of the web console: over plain HTTP and in headless
//! Chromium against `gatehouse run`, and card capture for enrolment in-process.

// The fixtures every test binary shares (each uses a part): public, so one
// this binary does not use is not dead code here. The area's own support
// module is private: everything in it is used by these tests.
#[path = "../common/mod.rs"]
pub mod common;
mod console_support;
// The LPR endpoint's fixtures, for the listener-limit tests.
#[path = "../lpr/lpr_support.rs"]
pub mod lpr_support;

mod browser;
mod capture;
mod enrol_liveness;
mod households;
mod http;
mod http_limits;

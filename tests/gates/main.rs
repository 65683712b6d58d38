//! Integration tests of the gates: the daemon's gate tasks in-process on the
//! simulated backend, and `gatehouse run` as a real process driven by the CLI
//! and signals. One test binary per area, so the suite links OpenCV, ONNX
//! Runtime and SQLite a handful of times rather than once per file.

// The fixtures every test binary shares (each uses a part): public, so one
// this binary does not use is not dead code here. The area's own support
// module is private: everything in it is used by these tests.
#[path = "../common/mod.rs"]
pub mod common;
// The LPR endpoint's fixtures, for the plate watchlist tests.
mod daemon_support;
mod gate_support;
#[path = "../lpr/lpr_support.rs"]
pub mod lpr_support;
// The console's HTTP client, for the registry's device page of the site.
#[path = "../console/console_support.rs"]
pub mod console_support;

mod cli;
mod daemon_run;
mod face_models;
mod in_process;
mod site;
mod site_demo;
mod site_reports;
mod site_state;
mod site_tls;
mod station_python;
mod trust_access;

//! Integration tests of what the operator installs and runs: `config check`,
//! `models fetch|verify`, `doctor`, `demo`, the systemd unit and the .deb.

// The fixtures every test binary shares (each uses a part): public, so one
// this binary does not use is not dead code here. The area's own support
// module is private: everything in it is used by these tests.
#[path = "../common/mod.rs"]
pub mod common;

mod config_cli;
mod deb_package;
mod demo;
mod demo_stay;
mod doctor_cli;
mod systemd_units;

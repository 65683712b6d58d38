//! Integration tests of enrolment through the `gatehouse` binary: the manager's
//! commands, CSV import, a kill in the middle of an import, personal data at rest.

// The fixtures every test binary shares (each uses a part): public, so one
// this binary does not use is not dead code here. The area's own support
// module is private: everything in it is used by these tests.
#[path = "../common/mod.rs"]
pub mod common;
mod enrol_support;

mod cli;
mod crash;
mod import;
mod pipl_desk;
mod privacy;

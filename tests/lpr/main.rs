//! Integration tests of the plate-recognition endpoint over real HTTP: the JSON
//! and Hikvision pushes and the README's curl examples.

// The fixtures every test binary shares (each uses a part): public, so one
// this binary does not use is not dead code here. The area's own support
// module is private: everything in it is used by these tests.
#[path = "../common/mod.rs"]
pub mod common;
// Shared with benches/lpr.rs, which uses parts these tests do not.
pub mod lpr_support;

mod curl;
mod frigate;
mod hikvision;
mod json;

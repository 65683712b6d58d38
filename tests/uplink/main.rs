//! Integration tests of the uplink to the police station through a real
//! mosquitto: publishing the outbox, signed commands, TLS, a SIGKILL mid-drain.

// The fixtures every test binary shares (each uses a part): public, so one
// this binary does not use is not dead code here. The area's own support
// module is private: everything in it is used by these tests.
#[path = "../common/mod.rs"]
pub mod common;
mod uplink_support;

mod commands;
mod kill;
mod publish;
mod smoke_mqtt;
mod snapshots;
mod tls;

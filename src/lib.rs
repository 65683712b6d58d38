//! gatehouse: the software in the box at a residential compound's gate.
//!
//! The binary (`src/main.rs`) is a thin shell over this library: every command
//! and the daemon call the same modules, so tests exercise exactly what ships.
//! See ARCHITECTURE.md for the map.

pub mod access;
pub mod cli;
pub mod clock;
pub mod config;
pub mod console;
pub mod control;
pub mod daemon;
pub mod demo;
pub mod doctor;
pub mod domain;
pub mod door;
pub mod enrol;
pub mod event;
pub mod face;
pub mod http_server;
pub mod hw;
#[cfg(test)]
mod layering;
pub mod logging;
pub mod lpr;
pub mod metrics;
pub mod models;
pub mod onnx;
pub mod secret;
pub mod signing;
pub mod site;
pub mod site_demo;
pub mod station;
pub mod store;
pub mod units;
pub mod uplink;
pub mod wiegand;

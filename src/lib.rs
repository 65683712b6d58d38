//! gatehouse: the software in the box at a residential compound's gate.
//!
//! The binary (`src/main.rs`) is a thin shell over this library: every command
//! and the daemon call the same modules, so tests exercise exactly what ships.
//! See ARCHITECTURE.md for the map.

pub mod cli;
pub mod config;
pub mod domain;
pub mod face;
pub mod logging;
pub mod models;
pub mod onnx;
pub mod store;

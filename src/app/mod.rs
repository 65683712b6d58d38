//! The composition root: where the daemon meets its adapters.
//!
//! `daemon` owns the gates, their decisions and the one writer; it knows
//! nothing of the console, the uplink, the LPR cameras or the site link.
//! This layer plugs them together: it starts the services around a running
//! `Daemon` (`services`), answers the adapters' traits with a `GateHandle`
//! (`plates` for `lpr::PlateSink`, `uplink_actions` for
//! `uplink::GatewayActions`, `site_host` for `site::Host`), and runs the
//! scripted demo (`demo`).
//! Only `cli` (and tests) sit above it.

pub mod demo;
mod plates;
pub mod services;
pub mod site_demo;
mod site_host;
mod uplink_actions;

#[cfg(test)]
mod tests;

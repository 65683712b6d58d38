//! The console's pages, one file per area. Handlers parse and check what was
//! posted, call the library (through `Ctx::store` or the gate handle) and
//! render the answer; they hold no logic of their own about the register.

pub mod accounts;
pub mod cards;
pub mod events;
pub mod faces;
pub mod households;
pub mod import;
pub mod login;
pub mod residents;
pub mod site;
pub mod status;
pub mod strangers;
pub mod visitors;

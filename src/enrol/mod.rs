//! Enrolment: turning what a property manager types or imports into values the
//! register can trust.
//!
//! The value types a manager enters (`IdDocument`, `Phone`, names) and their
//! masking live in `domain`, below `store`, so the register stores them
//! without importing this module. Here: the spreadsheet import, which drives
//! the register functions in `store`, and the date and text grammars of what
//! people type.

pub mod dates;
pub mod import;
pub mod text;

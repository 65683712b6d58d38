//! Integration tests of face recognition with the real models, photos and
//! video clip: the camera layer, the per-frame pipeline, enrolment, open-set
//! 1:N, strangers, the watchlist, card + face and household + face in the
//! running daemon.

// The fixtures every test binary shares (each uses a part): public, so one
// this binary does not use is not dead code here. The area's own support
// module is private: everything in it is used by these tests.
#[path = "../common/mod.rs"]
pub mod common;
mod face_support;

mod camera;
mod household;
mod liveness;
mod openset;
mod pipeline;
mod register;
mod smoke;
mod strangers;
mod two_factor;
mod watchlist;

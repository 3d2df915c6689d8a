//! What the test suite (`tests/suite`) and the benchmarks (`bench/`) share, so each is written
//! once. Never a dependency of the shipped `carehub`.
//!
//! Map:
//! - [`peer`] a webrtc-rs peer as a browser would be one, and the hub-frame signaling that
//!   connects two of them (`rtc_offer`, `rtc_answer`, `rtc_ice`).

pub mod peer;

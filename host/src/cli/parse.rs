//! The command line's size and duration parsers: [`crate::units`], where a bare number of
//! seconds is still accepted (flags and `wasmq.toml` values have always meant that).

pub use crate::units::{parse_duration_or_secs as parse_duration, parse_size};

//! The wall clock as the store records it (the store is IO; core never reads the clock).

use goodhart_core::Micros;

/// The wall-clock time, as stored (the store is IO; core never reads the clock).
pub fn now_micros() -> Micros {
    Micros::from_timestamp(jiff::Timestamp::now())
}

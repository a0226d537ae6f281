//! Bounded resources: how much a station keeps for peers and strangers.
//!
//! Every table a datagram from the network can grow has a cap in
//! [`Limits`]. A limit reached drops the request (or fails the call) and
//! counts it in [`crate::StationStats`]; the first time each limit is hit
//! the station logs a warning, then stays quiet.

use crate::Instant;
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

/// Caps on what a station keeps, part of [`crate::StationConfig`].
///
/// The defaults suit a game server with a few hundred stations.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Joins waiting for a postponed approval (`PostponeDecision`) at the
    /// session master, and join requests forwarded but not yet answered at a
    /// contact station. Default 64.
    pub max_pending_joins: usize,
    /// Join requests accepted per source IP address per second (token bucket
    /// refill rate). Default 10.
    pub join_attempts_per_second: u32,
    /// Join requests one source IP address may send in a burst. Default 20.
    pub join_burst: u32,
    /// Join requests accepted per second from all sources together (spoofed
    /// source addresses defeat the per-source limit). Default 100.
    pub join_attempts_per_second_total: u32,
    /// Source addresses whose join rate is tracked at once; when the table
    /// is full, sources not tracked share one bucket. Default 1024.
    pub max_join_sources: usize,
    /// RMCs this station waits on at once (outgoing calls with a reply).
    /// Beyond it a call fails at once with `Outcome::StationUnreachable`.
    /// Default 4096.
    pub max_rmcs_in_flight: usize,
    /// Postponed RMCs (`postpone_operation`) kept at once; beyond it a call
    /// asking to be postponed is dropped. Default 4096.
    pub max_postponed_calls: usize,
    /// Bytes queued for one peer and not yet sent; beyond it messages to
    /// that peer are dropped (the peer is too slow or gone). Default 8 MiB.
    pub max_queued_bytes_per_link: usize,
    /// Messages a joining station buffers before its join is accepted.
    /// Default 1024.
    pub max_early_messages: usize,
    /// Rooms one station may own on one server at once. Default 16.
    pub max_rooms_per_station: usize,
    /// Properties of one room. Default 64.
    pub max_room_properties: usize,
    /// Bytes of one room property, key and value together. Default 1024.
    pub max_room_property_bytes: usize,
    /// Room requests this station waits on at once; beyond it a request
    /// fails at once with [`crate::StationError::TooManyRoomRequests`].
    /// Default 256.
    pub max_room_requests_in_flight: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_pending_joins: 64,
            join_attempts_per_second: 10,
            join_burst: 20,
            join_attempts_per_second_total: 100,
            max_join_sources: 1024,
            max_rmcs_in_flight: 4096,
            max_postponed_calls: 4096,
            max_queued_bytes_per_link: 8 << 20,
            max_early_messages: 1024,
            max_rooms_per_station: 16,
            max_room_properties: 64,
            max_room_property_bytes: 1024,
            max_room_requests_in_flight: 256,
        }
    }
}

/// Which limit was hit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Limit {
    JoinRate,
    PendingJoins,
    RmcsInFlight,
    PostponedCalls,
    QueuedBytes,
    EarlyMessages,
}

impl Limit {
    fn bit(self) -> u32 {
        1 << (self as u32)
    }

    fn describe(self) -> &'static str {
        match self {
            Limit::JoinRate => "join attempts per source exceed the rate limit; dropping them",
            Limit::PendingJoins => "too many pending joins; dropping new join requests",
            Limit::RmcsInFlight => "too many RMCs in flight; new calls fail at once",
            Limit::PostponedCalls => "too many postponed calls; dropping calls",
            Limit::QueuedBytes => "a peer's send queue is full; dropping messages to it",
            Limit::EarlyMessages => "too many messages before the join completed; dropping them",
        }
    }
}

#[derive(Clone, Copy, Debug)]
struct Bucket {
    tokens: f64,
    last: Instant,
}

impl Bucket {
    fn full(burst: u32, now: Instant) -> Bucket {
        Bucket {
            tokens: f64::from(burst.max(1)),
            last: now,
        }
    }

    fn take(&mut self, rate: u32, burst: u32, now: Instant) -> bool {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.last = now;
        let cap = f64::from(burst.max(1));
        self.tokens = (self.tokens + elapsed * f64::from(rate)).min(cap);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// Rate limiting state and the warned-once flags of one station.
#[derive(Debug, Default)]
pub(crate) struct LimitState {
    warned: u32,
    buckets: HashMap<IpAddr, Bucket>,
    /// Shared by the sources that do not fit in `buckets`.
    overflow: Option<Bucket>,
    /// All sources together.
    total: Option<Bucket>,
    last_sweep: Instant,
}

impl LimitState {
    /// Records that `limit` was hit; logs the first time only.
    pub(crate) fn hit(&mut self, limit: Limit, station: crate::StationId) {
        if self.warned & limit.bit() == 0 {
            self.warned |= limit.bit();
            tracing::warn!(station = %station, limit = ?limit, "{}", limit.describe());
        }
    }

    /// Whether a join request from `from` may be handled now.
    pub(crate) fn allow_join(&mut self, limits: &Limits, from: SocketAddr, now: Instant) -> bool {
        // Buckets that refilled completely carry no information: forget them.
        let refill = Duration::from_secs_f64(
            f64::from(limits.join_burst.max(1)) / f64::from(limits.join_attempts_per_second.max(1)),
        );
        if now.saturating_duration_since(self.last_sweep) >= refill {
            self.last_sweep = now;
            self.buckets
                .retain(|_, b| now.saturating_duration_since(b.last) < refill);
        }
        let (rate, burst) = (limits.join_attempts_per_second, limits.join_burst);
        let ip = from.ip();
        let ok = if let Some(b) = self.buckets.get_mut(&ip) {
            b.take(rate, burst, now)
        } else if self.buckets.len() < limits.max_join_sources {
            let mut b = Bucket::full(burst, now);
            let ok = b.take(rate, burst, now);
            self.buckets.insert(ip, b);
            ok
        } else {
            self.overflow
                .get_or_insert_with(|| Bucket::full(burst, now))
                .take(rate, burst, now)
        };
        let total = limits.join_attempts_per_second_total;
        ok && self
            .total
            .get_or_insert_with(|| Bucket::full(total.saturating_mul(2), now))
            .take(total, total.saturating_mul(2), now)
    }

    /// Source addresses tracked (for tests of the bound).
    #[cfg(test)]
    pub(crate) fn tracked_sources(&self) -> usize {
        self.buckets.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(i: u32) -> SocketAddr {
        SocketAddr::from((std::net::Ipv4Addr::from(0x0A00_0000 + i), 4000))
    }

    #[test]
    fn token_bucket_refills_with_time() {
        let limits = Limits::default();
        let mut st = LimitState::default();
        let t0 = Instant::from_millis(1000);
        let allowed = (0..100)
            .filter(|_| st.allow_join(&limits, addr(1), t0))
            .count();
        assert_eq!(allowed, limits.join_burst as usize);
        let t1 = t0 + Duration::from_secs(1);
        let allowed = (0..100)
            .filter(|_| st.allow_join(&limits, addr(1), t1))
            .count();
        assert_eq!(allowed, limits.join_attempts_per_second as usize);
        // Another source has its own bucket.
        assert!(st.allow_join(&limits, addr(2), t1));
    }

    #[test]
    fn source_table_is_bounded() {
        let limits = Limits {
            max_join_sources: 16,
            ..Limits::default()
        };
        let mut st = LimitState::default();
        let now = Instant::from_millis(5);
        let allowed = (0..10_000)
            .filter(|i| st.allow_join(&limits, addr(*i), now))
            .count();
        assert!(st.tracked_sources() <= 16);
        // One attempt each for the 16 tracked sources, then one shared burst.
        assert_eq!(allowed, 16 + limits.join_burst as usize);
    }
}

//! Congestion control of a link: a NewReno window (RFC 9002, section 7) and
//! a pacer that spreads the window over the round trip.
//!
//! The window counts the bytes of ack-eliciting packets in flight. It starts
//! at [`TransportConfig::initial_window`], doubles every round trip in slow
//! start, grows by one datagram per window in congestion avoidance, and is
//! halved once per recovery period when a packet sent after the period began
//! is lost; persistent congestion (every packet over a long enough span
//! lost) brings it down to the minimum of two datagrams. The pacer is a
//! token bucket filled at 5/4 of `cwnd / srtt`: a paced link reports when it
//! may send next through [`Link::poll_timeout`](super::Link::poll_timeout).

use std::time::Duration;

use super::TransportConfig;
use crate::Instant;

/// Smallest window, in datagrams.
const MIN_WINDOW_DATAGRAMS: u64 = 2;
/// The pacer's burst: this fraction of the window may go at once.
const BURST_DIVISOR: u64 = 4;
/// The pacer's burst is at least this many datagrams.
const MIN_BURST_DATAGRAMS: u64 = 4;

/// A link's congestion window and pacer.
#[derive(Debug)]
pub(super) struct Congestion {
    enabled: bool,
    datagram: u64,
    cwnd: u64,
    ssthresh: u64,
    min_window: u64,
    max_window: u64,
    bytes_in_flight: u64,
    /// Packets sent at or before this instant do not grow the window nor
    /// start a new congestion event.
    recovery_start: Option<Instant>,
    /// Bytes acknowledged in congestion avoidance not yet turned into window.
    avoidance_credit: u64,
    /// Pacer tokens (bytes) as of `tokens_at`.
    tokens: u64,
    tokens_at: Instant,
    /// Set when the last send left fewer tokens than a datagram: the
    /// earliest instant the next reliable packet may go.
    paced_until: Option<Instant>,
    pub(super) congestion_events: u64,
    pub(super) persistent_congestion: u64,
}

impl Congestion {
    pub(super) fn new(config: &TransportConfig, now: Instant) -> Congestion {
        let datagram = config.max_datagram_size.max(1) as u64;
        let min_window = MIN_WINDOW_DATAGRAMS * datagram;
        let max_window = (config.max_unacked_packets.max(1) as u64)
            .saturating_mul(datagram)
            .max(min_window);
        let cwnd = (config.initial_window as u64).clamp(min_window, max_window);
        Congestion {
            enabled: config.congestion_control,
            datagram,
            cwnd,
            ssthresh: u64::MAX,
            min_window,
            max_window,
            bytes_in_flight: 0,
            recovery_start: None,
            avoidance_credit: 0,
            // The first flight goes unpaced.
            tokens: cwnd,
            tokens_at: now,
            paced_until: None,
            congestion_events: 0,
            persistent_congestion: 0,
        }
    }

    /// The congestion window in bytes.
    pub(super) fn window(&self) -> u64 {
        self.cwnd
    }

    /// Bytes of ack-eliciting packets in flight.
    pub(super) fn bytes_in_flight(&self) -> u64 {
        self.bytes_in_flight
    }

    /// Whether the window has room: a packet may go while fewer bytes than
    /// the window are in flight (so the window is overshot by less than a
    /// datagram).
    pub(super) fn window_open(&self) -> bool {
        !self.enabled || self.bytes_in_flight < self.cwnd
    }

    /// Whether the pacer lets a packet go at `now`.
    pub(super) fn pacer_open(&self, now: Instant) -> bool {
        self.paced_until.is_none_or(|t| now >= t)
    }

    /// When the pacer next lets a packet go, if it holds one back.
    pub(super) fn paced_until(&self) -> Option<Instant> {
        if self.enabled {
            self.paced_until
        } else {
            None
        }
    }

    fn in_recovery(&self, time_sent: Instant) -> bool {
        self.recovery_start.is_some_and(|r| time_sent <= r)
    }

    /// The pacing rate in bytes per second.
    fn rate(&self, srtt: Duration) -> u64 {
        let micros = u64::try_from(srtt.as_micros()).unwrap_or(u64::MAX).max(1);
        (self.cwnd.saturating_mul(5) / 4)
            .saturating_mul(1_000_000)
            .checked_div(micros)
            .unwrap_or(u64::MAX)
            .max(1)
    }

    fn burst(&self) -> u64 {
        (self.cwnd / BURST_DIVISOR)
            .max(MIN_BURST_DATAGRAMS * self.datagram)
            .min(self.cwnd)
    }

    /// An ack-eliciting packet of `size` bytes was sent at `now`.
    pub(super) fn on_sent(&mut self, now: Instant, size: u64, srtt: Duration) {
        self.bytes_in_flight += size;
        if !self.enabled {
            return;
        }
        let rate = self.rate(srtt);
        let elapsed = now.saturating_duration_since(self.tokens_at);
        let earned =
            u64::try_from(u128::from(rate).saturating_mul(elapsed.as_micros()) / 1_000_000)
                .unwrap_or(u64::MAX);
        let cap = self.burst();
        if self.tokens < cap {
            self.tokens = self.tokens.saturating_add(earned).min(cap);
        }
        self.tokens_at = now;
        self.tokens = self.tokens.saturating_sub(size);
        self.paced_until = if self.tokens >= self.datagram {
            None
        } else {
            let missing = self.datagram - self.tokens;
            let wait = u128::from(missing) * 1_000_000 / u128::from(rate);
            // Round up, so the tokens are there when the time comes.
            let wait = u64::try_from(wait).unwrap_or(u64::MAX).saturating_add(1);
            Some(now.saturating_add(Duration::from_micros(wait)))
        };
    }

    /// A packet of `size` bytes sent at `time_sent` was acknowledged.
    /// `in_flight_before` is the byte count in flight before this ack.
    pub(super) fn on_acked(&mut self, time_sent: Instant, size: u64, in_flight_before: u64) {
        self.bytes_in_flight = self.bytes_in_flight.saturating_sub(size);
        if self.in_recovery(time_sent) {
            return;
        }
        // A link that does not use half its window learns nothing about
        // the path: the window does not grow (RFC 9002, 7.8).
        if in_flight_before.saturating_mul(2) < self.cwnd {
            return;
        }
        if self.cwnd < self.ssthresh {
            self.cwnd = (self.cwnd + size).min(self.max_window);
        } else {
            self.avoidance_credit += size;
            if self.avoidance_credit >= self.cwnd {
                self.avoidance_credit -= self.cwnd;
                self.cwnd = (self.cwnd + self.datagram).min(self.max_window);
            }
        }
    }

    /// A packet of `size` bytes left the flight without an acknowledgement.
    pub(super) fn on_lost(&mut self, size: u64) {
        self.bytes_in_flight = self.bytes_in_flight.saturating_sub(size);
    }

    /// Packets were declared lost at `now`, the newest sent at
    /// `newest_lost_sent`; `persistent` when they span persistent congestion.
    pub(super) fn on_congestion(
        &mut self,
        now: Instant,
        newest_lost_sent: Instant,
        persistent: bool,
    ) {
        if !self.in_recovery(newest_lost_sent) {
            self.recovery_start = Some(now);
            self.ssthresh = (self.cwnd / 2).max(self.min_window);
            self.cwnd = self.ssthresh;
            self.avoidance_credit = 0;
            self.congestion_events += 1;
        }
        if persistent {
            self.cwnd = self.min_window;
            self.persistent_congestion += 1;
        }
        let cap = self.burst();
        self.tokens = self.tokens.min(cap);
    }
}

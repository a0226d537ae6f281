//! Configuration and statistics of the simulated network.

use std::net::SocketAddr;
use std::time::Duration;

use crate::Instant;

/// How the simulated network behaves.
///
/// Build one with struct-update syntax:
///
/// ```
/// use netz_core::sim::SimConfig;
/// use std::time::Duration;
/// let config = SimConfig { seed: 42, loss: 0.1, jitter: Duration::from_millis(2), ..SimConfig::default() };
/// assert!(config.validate().is_ok());
/// ```
///
/// Probabilities outside `[0, 1]` are not an error for [`Sim::new`](super::Sim::new):
/// it clamps them into `[0, 1]` (NaN becomes 0). Use [`SimConfig::validate`] or
/// [`Sim::try_new`](super::Sim::try_new) to reject them instead.
#[derive(Debug, Clone, PartialEq)]
pub struct SimConfig {
    /// Seed of the network's random decisions (loss, jitter, duplication,
    /// reordering). Default 0.
    pub seed: u64,
    /// One-way base latency of every datagram. Default 5 ms.
    pub latency: Duration,
    /// Uniformly distributed extra delay in `0..jitter` added to every
    /// datagram. Default zero.
    pub jitter: Duration,
    /// Probability that a datagram is lost. Default 0.
    pub loss: f64,
    /// Probability that a (not lost) datagram is delivered twice; the second
    /// copy gets its own independently drawn delay. Default 0.
    pub duplicate: f64,
    /// Probability that a datagram gets an extra random delay in
    /// `0..=reorder_delay`, so that it overtakes or is overtaken by others.
    /// Default 0.
    pub reorder: f64,
    /// Upper bound of the extra delay of reordered datagrams. Default 20 ms.
    pub reorder_delay: Duration,
    /// Datagrams with more bytes than this are dropped (and counted in
    /// [`SimStats::dropped_mtu`]). Default 1500.
    pub mtu: usize,
    /// Rate of every link, in bytes per second in each direction: a
    /// datagram is serialized onto the link after the ones before it
    /// (taking `len / bandwidth`), then travels for its delay. `None`
    /// (the default): infinitely fast. See [`Sim::set_link_bandwidth`](super::Sim::set_link_bandwidth).
    pub bandwidth: Option<u64>,
    /// With a `bandwidth`, the bytes each direction of a link holds waiting
    /// to be serialized; a datagram that does not fit is dropped (tail
    /// drop, counted in [`SimStats::dropped_queue`]). Default 64 KiB.
    pub queue_bytes: usize,
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            seed: 0,
            latency: Duration::from_millis(5),
            jitter: Duration::ZERO,
            loss: 0.0,
            duplicate: 0.0,
            reorder: 0.0,
            reorder_delay: Duration::from_millis(20),
            mtu: 1500,
            bandwidth: None,
            queue_bytes: 64 << 10,
        }
    }
}

/// A [`SimConfig`] field that is out of range.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SimConfigError {
    /// A probability is not within `[0, 1]` (or is NaN).
    #[error("`{field}` must be a probability in [0, 1], got {value}")]
    Probability {
        /// The offending field.
        field: &'static str,
        /// Its value.
        value: f64,
    },
}

/// Whether `p` is a valid probability.
pub(crate) fn is_probability(p: f64) -> bool {
    (0.0..=1.0).contains(&p)
}

/// `p` clamped into `[0, 1]`; NaN becomes 0.
pub(crate) fn clamp_probability(p: f64) -> f64 {
    if p.is_nan() {
        0.0
    } else {
        p.clamp(0.0, 1.0)
    }
}

impl SimConfig {
    /// The default configuration with the given seed.
    pub fn seeded(seed: u64) -> Self {
        SimConfig {
            seed,
            ..SimConfig::default()
        }
    }

    /// Checks that every probability is within `[0, 1]`.
    pub fn validate(&self) -> Result<(), SimConfigError> {
        for (field, value) in [
            ("loss", self.loss),
            ("duplicate", self.duplicate),
            ("reorder", self.reorder),
        ] {
            if !is_probability(value) {
                return Err(SimConfigError::Probability { field, value });
            }
        }
        Ok(())
    }

    /// This configuration with every probability clamped into `[0, 1]`
    /// (NaN becomes 0).
    pub fn clamped(mut self) -> Self {
        self.loss = clamp_probability(self.loss);
        self.duplicate = clamp_probability(self.duplicate);
        self.reorder = clamp_probability(self.reorder);
        self
    }
}

/// Counters of what happened to datagrams in a [`Sim`](super::Sim).
///
/// Every datagram a node emits is counted once in `sent`, then exactly once in
/// `lost`, `dropped_mtu` or `dropped_partition` if the network refuses it at
/// once; otherwise it (and its duplicate, counted in `duplicated`) is each
/// counted once in `delivered`, `dropped_partition`, `dropped_crashed` or
/// `to_unknown_address` when it arrives or is purged — or is still in flight.
/// A datagram refused by a full link queue is counted in `dropped_queue`
/// (random loss is drawn before the queue: a lost datagram takes no room).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SimStats {
    /// Datagrams emitted by nodes (`poll_transmit` results).
    pub sent: u64,
    /// Datagrams handed to a node (`handle_datagram` calls), duplicates included.
    pub delivered: u64,
    /// Datagrams lost at random (global or per-link loss).
    pub lost: u64,
    /// Extra copies created by duplication.
    pub duplicated: u64,
    /// Datagrams (copies included) that got an extra reordering delay.
    pub reordered: u64,
    /// Datagrams larger than the MTU.
    pub dropped_mtu: u64,
    /// Datagrams blocked by a partition, when sent or when arriving.
    pub dropped_partition: u64,
    /// Datagrams whose destination was crashed when they arrived, or that were
    /// in flight to a node when it crashed or was restarted.
    pub dropped_crashed: u64,
    /// Datagrams that arrived at an address where no node lives.
    pub to_unknown_address: u64,
    /// Timeouts handled (`handle_timeout` calls).
    pub timeouts: u64,
    /// Datagrams dropped because the queue of a link with a bandwidth was full.
    pub dropped_queue: u64,
    /// The most bytes any link's queue held at once (links with a bandwidth).
    pub max_queue_bytes: u64,
}

/// One datagram handed to a node, as recorded by
/// [`Sim::set_recording`](super::Sim::set_recording).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Delivery {
    /// When it was delivered.
    pub at: Instant,
    /// Its sender.
    pub from: SocketAddr,
    /// Its receiver.
    pub to: SocketAddr,
    /// Its bytes.
    pub data: Vec<u8>,
}

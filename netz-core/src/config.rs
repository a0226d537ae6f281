//! The configuration of a station.

use crate::ids::ProcessType;
use crate::transport::TransportConfig;
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// How stations of a session are connected.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Serialize, Deserialize, Default)]
#[non_exhaustive]
pub enum Topology {
    /// Every station talks to every other station.
    #[default]
    Mesh,
    /// Clients talk only to their server; servers talk to each other and
    /// relay what clients address to each other (works behind NAT).
    ClientServer,
}

/// The configuration of one station.
#[derive(Clone, Debug)]
pub struct StationConfig {
    /// Client, server or tool.
    pub process_type: ProcessType,
    /// The identification token sent when joining (NetZ `GetIdentificationToken`).
    pub token: String,
    /// Mesh or client-server (must match the session's).
    pub topology: Topology,
    /// Transport settings (datagram size, sub-streams, RTO, heartbeats).
    pub transport: TransportConfig,
    /// Silence after which a peer is declared failed.
    pub failure_timeout: Duration,
    /// How long an RMC waits for its reply before `Outcome::TimedOut`.
    pub rmc_timeout: Duration,
    /// How long a join waits for an answer before it fails.
    pub join_timeout: Duration,
    /// How often a join request is resent while unanswered.
    pub join_retry: Duration,
    /// Entropy from the driver (the core has no random source); picks the
    /// session tag and join nonces.
    pub seed: u64,
    /// How many retries `RetryOnTargetValidationFailure` allows.
    pub max_rmc_retries: u32,
    /// How long a server that scales in waits for its clients to migrate
    /// before it disconnects the rest and leaves (the drivers' default for
    /// [`crate::Station::scale_in`]). Default 10 s.
    pub drain_timeout: Duration,
    /// Caps on pending joins, join rates, RMCs in flight and queues
    /// (see [`crate::limits::Limits`]).
    pub limits: crate::limits::Limits,
    /// Authenticated, encrypted datagrams and connect tokens (see
    /// [`crate::crypto`]). `None` (the default) sends datagrams in clear and
    /// admits every joiner the join approval accepts: for trusted networks
    /// and tests only.
    pub security: Option<crate::crypto::SecurityConfig>,
    /// Whether [`Event::ObjectAdded`](crate::Event::ObjectAdded),
    /// [`Event::ObjectRemoved`](crate::Event::ObjectRemoved) and
    /// [`Event::MasterChanged`](crate::Event::MasterChanged) are also
    /// reported for the core's own objects (stations, the session, rooms:
    /// class ids below [`ClassId::FIRST_USER`](crate::ClassId::FIRST_USER)).
    /// Default false: those events concern user objects only.
    pub core_object_events: bool,
    /// The bandwidth budget of every link, in bytes per second (see
    /// [`crate::Station::set_link_budget`] for one link): dataset updates
    /// go most important first as it allows; RMCs, actions and the
    /// protocol's own messages never wait for it but count against it.
    /// `None` (the default): no budget, updates go as they come (within
    /// the congestion window).
    pub link_budget: Option<u64>,
    /// How long a station remembers the stations declared failed and
    /// probes them, so that a session split by a partition becomes one
    /// again when the network heals (the side with fewer stations learns
    /// it was excluded: see [`Event::Excluded`](crate::Event::Excluded)
    /// and the README's "Frozen, partitioned and reconnecting stations").
    /// Zero turns the probes off. Default 60 s.
    pub partition_memory: Duration,
}

impl Default for StationConfig {
    fn default() -> Self {
        StationConfig {
            process_type: ProcessType::Client,
            token: String::new(),
            topology: Topology::Mesh,
            transport: TransportConfig::default(),
            failure_timeout: Duration::from_millis(1500),
            rmc_timeout: Duration::from_secs(10),
            join_timeout: Duration::from_secs(5),
            join_retry: Duration::from_millis(250),
            seed: 0x6e65_747a,
            max_rmc_retries: 3,
            drain_timeout: Duration::from_secs(10),
            limits: crate::limits::Limits::default(),
            security: None,
            core_object_events: false,
            link_budget: None,
            partition_memory: Duration::from_secs(60),
        }
    }
}

impl StationConfig {
    /// A configuration for the given process type and token.
    pub fn new(process_type: ProcessType, token: impl Into<String>) -> Self {
        StationConfig {
            process_type,
            token: token.into(),
            ..Default::default()
        }
    }
}

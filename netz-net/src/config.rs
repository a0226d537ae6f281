//! Station configuration as the driver sees it.

use crate::error::NetError;
use netz_core::crypto::{ConnectToken, Key, SecurityConfig};
use netz_core::{ProcessType, StationConfig, Topology};
use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hash, Hasher};
use std::net::SocketAddr;
use std::time::Duration;

/// The configuration of a [`crate::NetStation`]: the core's
/// [`StationConfig`] plus what only the driver cares about.
///
/// The defaults are the core's: heartbeat every 200 ms, a peer silent for
/// 1.5 s is declared failed, RMCs time out after 10 s, joins after 5 s.
///
/// ```
/// use netz_core::ProcessType;
/// use netz_net::NetConfig;
/// use std::time::Duration;
///
/// let config = NetConfig::new(ProcessType::Client, "alice")
///     .heartbeat_interval(Duration::from_millis(100))
///     .failure_timeout(Duration::from_millis(800));
/// assert_eq!(config.station.failure_timeout, Duration::from_millis(800));
/// ```
#[derive(Clone, Debug)]
pub struct NetConfig {
    /// The core's configuration.
    pub station: StationConfig,
    /// Whether the driver mixes fresh entropy (a random hasher key, the
    /// clock, the process id, the local address) into `station.seed`.
    /// Default true; turn it off for reproducible simulated runs.
    pub fresh_seed: bool,
    /// How many events a slow [`crate::Events`] receiver may fall behind
    /// before it misses some. Default 4096.
    pub event_capacity: usize,
}

impl NetConfig {
    /// The default configuration for a station of `process_type` joining with `token`.
    pub fn new(process_type: ProcessType, token: impl Into<String>) -> Self {
        StationConfig::new(process_type, token).into()
    }

    /// Sets how often an idle link sends a heartbeat.
    pub fn heartbeat_interval(mut self, d: Duration) -> Self {
        self.station.transport.heartbeat_interval = d;
        self
    }

    /// Sets the silence after which a peer is declared failed.
    pub fn failure_timeout(mut self, d: Duration) -> Self {
        self.station.failure_timeout = d;
        self
    }

    /// Sets how long an RMC waits for its reply.
    pub fn rmc_timeout(mut self, d: Duration) -> Self {
        self.station.rmc_timeout = d;
        self
    }

    /// Sets how long a join waits for an answer.
    pub fn join_timeout(mut self, d: Duration) -> Self {
        self.station.join_timeout = d;
        self
    }

    /// Sets how long a server that scales in waits for its clients to
    /// migrate (default 10 s; see [`crate::NetStation::scale_in`]).
    pub fn drain_timeout(mut self, d: Duration) -> Self {
        self.station.drain_timeout = d;
        self
    }

    /// Sets the session's topology.
    pub fn topology(mut self, t: Topology) -> Self {
        self.station.topology = t;
        self
    }

    /// Sets the seed (with [`NetConfig::fresh_seed`] off, runs are reproducible).
    pub fn seed(mut self, seed: u64, fresh: bool) -> Self {
        self.station.seed = seed;
        self.fresh_seed = fresh;
        self
    }

    /// Turns security on for a station that admits or vets joiners (the
    /// session's creator, servers): it holds the token key of the game
    /// `protocol_id`. Every link datagram is then sealed, and every joiner
    /// needs a connect token issued under this key (see [`crate::security`]).
    /// Combines with [`NetConfig::secure_joiner`] for a server that joins
    /// with a token and vets the joiners after it.
    pub fn secure_authority(mut self, token_key: Key, protocol_id: u64) -> Self {
        let sec = self
            .station
            .security
            .take()
            .unwrap_or_else(|| SecurityConfig::authority(token_key, protocol_id));
        self.station.security = Some(SecurityConfig {
            token_key: Some(token_key),
            protocol_id,
            ..sec
        });
        self
    }

    /// Turns security on for a station that joins with `token`, issued for
    /// the game `protocol_id` by its backend.
    pub fn secure_joiner(mut self, token: ConnectToken, protocol_id: u64) -> Self {
        let sec = match self.station.security.take() {
            Some(s) => s.with_token(token),
            None => SecurityConfig::joiner(token, protocol_id),
        };
        self.station.security = Some(SecurityConfig { protocol_id, ..sec });
        self
    }

    pub(crate) fn into_station_config(self, local: SocketAddr) -> Result<StationConfig, NetError> {
        let mut cfg = self.station;
        if let Some(sec) = cfg.security.as_mut() {
            // The driver's clock starts at zero now; tokens expire on Unix time.
            if sec.clock_origin_ms == 0 {
                sec.clock_origin_ms = crate::security::unix_ms();
            }
            // Salts and nonces of joins come from the operating system,
            // never from what the caller put in the configuration.
            sec.entropy = crate::security::random_bytes::<32>()?;
        }
        if self.fresh_seed {
            let mut h = RandomState::new().build_hasher();
            std::time::SystemTime::now().hash(&mut h);
            std::process::id().hash(&mut h);
            local.hash(&mut h);
            cfg.seed ^= h.finish();
        }
        Ok(cfg)
    }
}

impl From<StationConfig> for NetConfig {
    fn from(station: StationConfig) -> Self {
        NetConfig {
            station,
            fresh_seed: true,
            event_capacity: 4096,
        }
    }
}

//! A session of stations on the simulated network, for tests and examples.
//!
//! ```
//! use netz_core::cluster::Cluster;
//! use netz_core::{ProcessType, Registry, StationConfig};
//! use std::sync::Arc;
//!
//! let registry = Arc::new(Registry::new());
//! let configs = vec![
//!     StationConfig::new(ProcessType::Server, "srv"),
//!     StationConfig::new(ProcessType::Client, "a"),
//! ];
//! let cluster = Cluster::start(Default::default(), registry, configs).unwrap();
//! assert_eq!(cluster.station(1).session_master(), cluster.station(0).id());
//! ```

use crate::rmc::RmcContext;
use crate::session::{Event, JoinError, StationConfig};
use crate::sim::{Sim, SimConfig};
use crate::{Instant, Registry, Station};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

/// Stations on one simulated network; station 0 creates the session.
pub struct Cluster {
    /// The simulated network.
    pub sim: Sim<Station>,
    /// Each station's address, by index.
    pub addrs: Vec<SocketAddr>,
    registry: Arc<Registry>,
}

impl std::fmt::Debug for Cluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cluster")
            .field("addrs", &self.addrs)
            .finish()
    }
}

impl Cluster {
    /// Starts station 0's session and joins every other station through it,
    /// one after the other; fails with the first join error.
    pub fn start(
        sim: SimConfig,
        registry: Arc<Registry>,
        configs: Vec<StationConfig>,
    ) -> Result<Cluster, JoinError> {
        let mut c = Cluster {
            sim: Sim::new(sim),
            addrs: Vec::new(),
            registry,
        };
        let mut it = configs.into_iter();
        if let Some(first) = it.next() {
            let st = Station::new(first, c.registry.clone());
            let addr = c.sim.add_node(st);
            c.addrs.push(addr);
            let now = c.sim.now();
            c.sim.node_mut(addr).create_session(now, addr)?;
        }
        for cfg in it {
            c.join(cfg, 0)?;
        }
        Ok(c)
    }

    /// Adds a station and joins it through station `contact`.
    pub fn join(&mut self, cfg: StationConfig, contact: usize) -> Result<usize, JoinError> {
        let registry = self.registry.clone();
        self.join_with_registry(cfg, registry, contact)
    }

    /// Adds a station built with its own class registry (another build of
    /// the game, say) and joins it through station `contact`.
    pub fn join_with_registry(
        &mut self,
        cfg: StationConfig,
        registry: Arc<Registry>,
        contact: usize,
    ) -> Result<usize, JoinError> {
        let st = Station::new(cfg, registry);
        let addr = self.sim.add_node(st);
        self.addrs.push(addr);
        let i = self.addrs.len() - 1;
        self.join_existing(i, contact)?;
        Ok(i)
    }

    /// Joins the (idle) station `i` through station `contact`.
    pub fn join_existing(&mut self, i: usize, contact: usize) -> Result<(), JoinError> {
        let addr = self.addrs[i];
        let now = self.sim.now();
        let c = self.addrs[contact];
        self.sim.node_mut(addr).join(now, addr, c)?;
        let mut result = None;
        self.sim.run_until_cond(Duration::from_secs(30), |sim| {
            let st = sim.node_mut(addr);
            while let Some(e) = st.poll_event() {
                match e {
                    Event::Joined { .. } => result = Some(Ok(())),
                    Event::JoinFailed(err) => result = Some(Err(err)),
                    _ => {}
                }
            }
            result.is_some()
        });
        // Let the newcomer's discovery settle.
        self.sim.run_for(Duration::from_millis(100));
        result.unwrap_or(Err(JoinError::TimedOut))
    }

    /// Station `i`.
    pub fn station(&self, i: usize) -> &Station {
        self.sim.node(self.addrs[i])
    }

    /// Station `i`, mutably.
    pub fn station_mut(&mut self, i: usize) -> &mut Station {
        self.sim.node_mut(self.addrs[i])
    }

    /// The current virtual time.
    pub fn now(&self) -> Instant {
        self.sim.now()
    }

    /// Runs the network for `d` of virtual time.
    pub fn run_for(&mut self, d: Duration) {
        self.sim.run_for(d)
    }

    /// Runs until `cond` holds or `max` passes; returns whether it held.
    pub fn run_until(&mut self, max: Duration, mut cond: impl FnMut(&Cluster) -> bool) -> bool {
        let addrs = self.addrs.clone();
        let registry = self.registry.clone();
        let deadline = self.sim.now() + max;
        loop {
            if cond(self) {
                return true;
            }
            if self.sim.now() >= deadline {
                return false;
            }
            let next = self.sim.next_event_time();
            match next {
                Some(t) if t <= deadline => {
                    self.sim.step();
                }
                _ => {
                    self.sim.run_until(deadline);
                }
            }
            let _ = (&addrs, &registry);
        }
    }

    /// Runs until the call of `ctx` completes or `timeout` passes.
    pub fn wait<R>(&mut self, ctx: &RmcContext<R>, timeout: Duration) -> bool {
        let ctx = ctx.clone();
        self.run_until(timeout, move |_| ctx.is_complete())
    }

    /// Crashes station `i` (it stops answering).
    pub fn crash(&mut self, i: usize) {
        self.sim.crash(self.addrs[i]);
    }

    /// Drains station `i`'s events.
    pub fn events(&mut self, i: usize) -> Vec<Event> {
        let st = self.station_mut(i);
        std::iter::from_fn(|| st.poll_event()).collect()
    }

    /// Indexes of the stations that are not crashed.
    pub fn live(&self) -> Vec<usize> {
        (0..self.addrs.len())
            .filter(|i| !self.sim.is_crashed(self.addrs[*i]))
            .collect()
    }
}

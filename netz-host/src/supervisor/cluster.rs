//! Sessions shared by several servers (server clusters). netz-host only
//! passes a starting server the game address of a running server whose
//! session it is to join (`{join}`, `NETZ_JOIN`); the game joins it.

use super::*;

/// The session a starting server joins.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Join {
    /// The server whose address it gets.
    pub server: u64,
    /// That server's session.
    pub cluster: u64,
    /// Its game address, `ip:port`.
    pub addr: String,
}

/// How slot's next server starts.
pub(super) enum Contact {
    /// In a session of its own.
    Create,
    /// Joining a running session.
    Join(Join),
    /// Not yet: this server of the session is starting and not ready.
    Wait(u64),
}

/// `ip:port`, with brackets around an IPv6 address.
fn game_addr(ip: &str, port: u16) -> String {
    if ip.contains(':') {
        format!("[{ip}]:{port}")
    } else {
        format!("{ip}:{port}")
    }
}

impl Supervisor {
    /// Whether slot `i` runs a server that is not stopping and has said it
    /// is ready: one that can take clients, and joiners.
    pub(super) fn serving(&self, i: usize) -> bool {
        self.slots[i]
            .proc
            .as_ref()
            .is_some_and(|p| p.stopping.is_none() && p.ready)
    }

    /// The session of slot `i`'s server, while one runs.
    pub(super) fn cluster_of(&self, i: usize) -> Option<u64> {
        self.slots[i].proc.as_ref().map(|p| p.cluster)
    }

    /// How to join through slot `i`'s server.
    pub(super) fn join_through(&self, i: usize) -> Option<Join> {
        let p = self.slots[i].proc.as_ref()?;
        let (port, _) = self.ports(i, self.bc(&p.build_config));
        Some(Join {
            server: self.slots[i].server_id,
            cluster: p.cluster,
            addr: game_addr(&self.cfg.fleet.ip, port),
        })
    }

    /// A serving server of session `cluster` other than slot `not`:
    /// `prefer` when it serves, else one of build configuration `build`,
    /// else the first.
    pub(super) fn member_to_join(
        &self,
        cluster: u64,
        not: Option<usize>,
        prefer: Option<usize>,
        build: &str,
    ) -> Option<Join> {
        let members: Vec<usize> = (0..self.slots.len())
            .filter(|&j| Some(j) != not && self.serving(j) && self.cluster_of(j) == Some(cluster))
            .collect();
        let pick = prefer
            .filter(|p| members.contains(p))
            .or_else(|| {
                members.iter().copied().find(|&j| {
                    self.slots[j]
                        .proc
                        .as_ref()
                        .is_some_and(|p| p.build_config == build)
                })
            })
            .or_else(|| members.first().copied())?;
        self.join_through(pick)
    }

    /// How slot `i`'s next server starts with build configuration `bc`: a
    /// rolling upgrade's choice; else, with `join_args`, joining the
    /// session of the first serving server whose configuration has them
    /// too (waiting while such a server is still starting); else in a
    /// session of its own.
    pub(super) fn contact(&mut self, i: usize, bc: &BuildConfiguration) -> Contact {
        if bc.join_args.is_empty() {
            self.slots[i].join_to = None;
            return Contact::Create;
        }
        if let Some(j) = self.slots[i].join_to.take() {
            return Contact::Join(j);
        }
        let joins = |s: &Slot| {
            s.proc.as_ref().is_some_and(|p| {
                p.stopping.is_none() && !self.bc(&p.build_config).join_args.is_empty()
            })
        };
        let others = || (0..self.slots.len()).filter(|&j| j != i && joins(&self.slots[j]));
        if let Some(j) = others().find(|&j| self.serving(j)) {
            if let Some(join) = self.join_through(j) {
                return Contact::Join(join);
            }
        }
        match others().next() {
            Some(j) => Contact::Wait(self.slots[j].server_id),
            None => Contact::Create,
        }
    }

    /// Slot `i` starts once server `other` is ready to be joined.
    pub(super) fn wait_to_join(&mut self, i: usize, other: u64) {
        let id = self.slots[i].server_id;
        self.slots[i].start_at = Some(Instant::now() + upgrade::PROBE);
        if self.slots[i].waiting_for != Some(other) {
            self.slots[i].waiting_for = Some(other);
            self.log(
                Some(id),
                format!("waiting for server {other} to be ready, to join its session"),
            );
        }
    }
}

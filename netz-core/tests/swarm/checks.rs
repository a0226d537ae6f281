//! The invariants the swarm checks: after every step, and at the end once
//! the network healed and the session went quiet.

use crate::probe::{self, Probe};
use crate::world::World;
use netz_core::*;
use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;

/// Invariants of features that are not built yet, or that the protocol
/// does not promise: off by default, each named after what it needs.
/// `NETZ_SWARM_ENABLE=name,name` turns them on (to see whether a change
/// provides them).
#[derive(Clone, Copy, Debug, Default)]
pub struct Switches {
    /// `session_epoch`: a station the session declared failed (it was
    /// frozen or cut off for longer than the failure timeout) learns it
    /// once it hears from the session again, and either rejoins or closes;
    /// after the heal every station in a session is known by all the
    /// stations it knows. The station's side of the rule is built (a
    /// stall, the partition rule's probes, a successor that never takes
    /// over, a departure retold by the session master: see
    /// `tests/partitions.rs`); the check is on with `long_outages` (see
    /// `Scenarios::long_outages`), off in the default mix, where no live
    /// station is declared failed.
    pub session_epoch: bool,
}

impl Switches {
    /// The switches `NETZ_SWARM_ENABLE` turns on.
    pub fn from_env() -> Switches {
        let mut s = Switches::default();
        if let Ok(v) = std::env::var("NETZ_SWARM_ENABLE") {
            for name in v.split(',').map(str::trim) {
                match name {
                    "session_epoch" => s.session_epoch = true,
                    "" => {}
                    other => panic!("NETZ_SWARM_ENABLE: no switch `{other}`"),
                }
            }
        }
        s
    }
}

/// Whether `a` counts `b` (a station at `b_addr`) among its members: it
/// knows its id, at its address (or at the unspecified address, which is
/// all a client learns of other clients).
pub fn knows(a: &Station, b: &Station, b_addr: SocketAddr) -> bool {
    if b.id() == StationId::NONE || a.id() == b.id() {
        return false;
    }
    a.station_info(b.id())
        .is_some_and(|info| info.addr == b_addr || info.addr.ip().is_unspecified())
}

/// Whether `a` and `b` count each other among their members: they are in
/// the same session, as far as either can tell.
pub fn mutual(w: &World, a: usize, b: usize) -> bool {
    let (sa, sb) = (w.station(a), w.station(b));
    sa.is_in_session()
        && sb.is_in_session()
        && knows(sa, sb, w.slots[b].addr)
        && knows(sb, sa, w.slots[a].addr)
}

/// The checks after every step.
pub fn step(w: &mut World) -> Result<(), String> {
    w.stats.checks += 1;
    if let Some(f) = w.failures.first() {
        return Err(f.clone());
    }
    if let Some(v) = probe::with_journal(|j| j.violations.first().cloned()) {
        return Err(format!("reliable delivery: {v}"));
    }
    single_master(w)?;
    calls(w)?;
    bounded(w)?;
    Ok(())
}

/// At most one master per object among stations of one session.
///
/// With long outages (`Scenarios::long_outages`) live stations are
/// declared failed, and a session splits for a while: each side elects a
/// session master of its own and recovers the other side's objects, so
/// both serve them until the partition rule ends the losing side after the
/// heal. Two stations that follow different session masters are on two
/// sides then, not in one session (that every object ends with one master
/// is checked at the end, after the heal). So are two stations that a
/// partition separates while no station in a session reaches both: each
/// side serves its own, though one has not yet found the other gone and
/// still follows its session master (the call of a station on one side
/// can reach one of them only). Without long outages, they count as one
/// session whenever they count each other.
fn single_master(w: &World) -> Result<(), String> {
    let split = w.p.scenarios.long_outages;
    let apart = |a: usize, b: usize| {
        let (x, y) = (w.slots[a].addr, w.slots[b].addr);
        w.sim.is_cut(x, y)
            && w.in_session().into_iter().all(|c| {
                let z = w.slots[c].addr;
                w.sim.is_cut(z, x) || w.sim.is_cut(z, y) || z == x || z == y
            })
    };
    let mut claims: BTreeMap<DOHandle, Vec<usize>> = BTreeMap::new();
    for i in w.in_session() {
        for h in w.station(i).masters() {
            claims.entry(h).or_default().push(i);
        }
    }
    for (h, nodes) in claims {
        for (k, &a) in nodes.iter().enumerate() {
            for &b in &nodes[k + 1..] {
                let sides = split
                    && (w.station(a).session_master() != w.station(b).session_master()
                        || apart(a, b));
                if mutual(w, a, b) && !sides {
                    return Err(format!(
                        "two masters of {h:?} in one session: node {a} ({}) and node {b} ({})",
                        w.station(a).id(),
                        w.station(b).id()
                    ));
                }
            }
        }
    }
    Ok(())
}

/// Completed calls tell the truth; nothing waits past its timeout; what
/// the station waits for is what the application waits for.
fn calls(w: &mut World) -> Result<(), String> {
    let mut waiting: BTreeMap<u64, usize> = BTreeMap::new();
    for c in &mut w.calls {
        if c.checked {
            continue;
        }
        if !c.ctx.is_complete() {
            *waiting.entry(c.caller).or_default() += 1;
            continue;
        }
        c.checked = true;
        let outcome = c.ctx.outcome();
        *w.stats.outcomes.entry(format!("{outcome:?}")).or_default() += 1;
        if outcome != Outcome::Success {
            continue;
        }
        let ran = probe::with_journal(|j| j.rmc_done.get(&(c.caller, c.substream, c.seq)).copied());
        let Some((_, executor)) = ran else {
            return Err(format!(
                "apply #{} of {:#x} succeeded but never ran",
                c.seq, c.caller
            ));
        };
        match c.ctx.result() {
            Some((seq, by, _)) if seq == c.seq && by == executor.0 && executor == c.target => {}
            other => {
                return Err(format!(
                    "apply #{} of {:#x} sent to {} ran on {executor} and returned {other:?}",
                    c.seq, c.caller, c.target
                ))
            }
        }
    }
    for i in 0..w.slots.len() {
        if !w.is_active(i) {
            continue;
        }
        let st = w.station(i);
        let timeout = w.p.rmc_timeout;
        if let Some(v) = st.rmc_views().into_iter().find(|v| v.age > timeout) {
            return Err(format!(
                "node {i} still waits for a call to {} sent {:?} ago (timeout {timeout:?})",
                v.target, v.age
            ));
        }
        let pending = st.bookkeeping().pending_calls;
        let expected = waiting.get(&w.uid(i)).copied().unwrap_or(0);
        if pending != expected {
            return Err(format!(
                "node {i} has {pending} calls pending, its application waits for {expected}"
            ));
        }
    }
    Ok(())
}

/// What remote input can grow stays within its bounds.
fn bounded(w: &World) -> Result<(), String> {
    let limits = netz_core::limits::Limits::default();
    let objects_ever = w.handles.len() + 4 * w.slots.len() + 64;
    for i in 0..w.slots.len() {
        if !w.is_up(i) {
            continue;
        }
        let st = w.station(i);
        let b = st.bookkeeping();
        let members = st.stations().len().max(1);
        let held_bound = 4096 * (members + 1) * 4;
        let rooms = st.rooms().len();
        let problems = [
            (b.early_relayed > 1024, "early relayed messages"),
            (b.early_relayed_bytes > 1 << 20, "early relayed bytes"),
            (b.held_in_order > held_bound, "messages held in order"),
            (b.pending_calls > limits.max_rmcs_in_flight, "pending calls"),
            (b.postponed_calls > 0, "postponed calls"),
            (
                // Claims wait for objects not here yet, 64 at most.
                b.pending_masters > st.objects().len() + 64,
                "pending master changes",
            ),
            (b.room_reports > 2 * rooms + 2, "room reports"),
            (st.objects().len() > objects_ever, "objects"),
            (st.link_views().len() > members, "links"),
        ];
        if let Some((_, what)) = problems.iter().find(|p| p.0) {
            return Err(format!("node {i}: too many {what}: {b:?}"));
        }
        if let Some(l) = st
            .link_views()
            .into_iter()
            .find(|l| l.queued_bytes > limits.max_queued_bytes_per_link)
        {
            return Err(format!(
                "node {i}: {} bytes queued for {}",
                l.queued_bytes, l.peer
            ));
        }
    }
    Ok(())
}

/// The checks once the network healed and the session is quiet.
pub fn end(w: &mut World, switches: Switches) -> Result<(), String> {
    step(w)?;
    let live = w.in_session();
    // Every call completed (the calls of crashed stations died with them).
    if let Some(c) = w
        .calls
        .iter()
        .find(|c| !c.ctx.is_complete() && w.is_up(c.node) && w.uid(c.node) == c.caller)
    {
        return Err(format!(
            "apply #{} of node {} sent at {:?} never completed",
            c.seq, c.node, c.sent
        ));
    }
    for &i in &live {
        let st = w.station(i);
        let b = st.bookkeeping();
        if b.pending_calls
            + b.postponed_calls
            + b.held_in_order
            + b.pending_masters
            + b.early_relayed
            != 0
        {
            return Err(format!("node {i} keeps state after the quiet: {b:?}"));
        }
    }
    // Only stations whose members all count them are settled: a station
    // declared failed may still believe in its session (the session epoch
    // switch checks that this cannot happen).
    let settled: Vec<usize> = live
        .iter()
        .copied()
        .filter(|&i| {
            let st = w.station(i);
            st.stations().iter().filter(|m| m.id != st.id()).all(|m| {
                live.iter()
                    .any(|&k| w.station(k).id() == m.id && mutual(w, i, k))
            })
        })
        .collect();
    if switches.session_epoch {
        if let Some(&i) = live.iter().find(|i| !settled.contains(i)) {
            let st = w.station(i);
            let views: Vec<String> = live
                .iter()
                .map(|&k| {
                    let s = w.station(k);
                    format!(
                        "node {k} ({}, session master {}): {:?}",
                        s.id(),
                        s.session_master(),
                        s.stations().iter().map(|m| m.id).collect::<Vec<_>>()
                    )
                })
                .collect();
            return Err(format!(
                "node {i} ({}) believes in a session whose members do not count it: {:?}; the live stations' views: {}",
                st.id(),
                st.stations().iter().map(|s| s.id).collect::<Vec<_>>(),
                views.join("; ")
            ));
        }
    }
    for &i in &settled {
        if !w.station(i).is_idle() {
            return Err(format!(
                "node {i} is not idle after the quiet: {:?}",
                w.station(i).link_views()
            ));
        }
    }
    // Stations of one session agree on who is in it and who leads it.
    for &a in &settled {
        for &b in &settled {
            if a < b && mutual(w, a, b) {
                let (sa, sb) = (w.station(a), w.station(b));
                let ids = |s: &Station| s.stations().iter().map(|m| m.id).collect::<BTreeSet<_>>();
                if ids(sa) != ids(sb) || sa.session_master() != sb.session_master() {
                    return Err(format!(
                        "nodes {a} and {b} disagree about their session: {:?} led by {} and {:?} led by {}",
                        ids(sa),
                        sa.session_master(),
                        ids(sb),
                        sb.session_master()
                    ));
                }
            }
        }
    }
    converged(w, &settled)?;
    // Every room request of a station still in the session is answered
    // (by its server, or with a failure at its timeout).
    if let Some(((i, inc, request), at)) = w
        .room_requests
        .iter()
        .find(|((i, inc, _), _)| w.slots[*i].incarnation == *inc && live.contains(i))
    {
        return Err(format!(
            "room request {request} of node {i} (incarnation {inc}) sent at {at:?} was never answered"
        ));
    }
    if w.p.calm {
        calm(w)?;
    }
    Ok(())
}

/// Duplicas hold their master's state; every station of a session holds
/// every object of it; no duplica is left without its master.
fn converged(w: &World, settled: &[usize]) -> Result<(), String> {
    let by_id = |d: usize, id: StationId| {
        settled
            .iter()
            .copied()
            .find(|&k| w.station(k).id() == id && mutual(w, d, k))
    };
    for &d in settled {
        let st = w.station(d);
        for h in st.duplicas() {
            let Some(m) = st.master_of(h) else { continue };
            let Some(k) = by_id(d, m) else {
                return Err(format!(
                    "node {d} holds a duplica of {h:?} whose master {m} is not in its session"
                ));
            };
            let master = w.station(k);
            if master.master_of(h) != Some(m) {
                return Err(format!(
                    "node {d} holds a duplica of {h:?} mastered by {m}, which does not master it (it has {:?})",
                    master.master_of(h)
                ));
            }
            let (mine, theirs) = (st.dataset_views(h), master.dataset_views(h));
            if mine != theirs {
                return Err(format!(
                    "node {d}'s duplica of {h:?} differs from its master on node {k}: {mine:?} vs {theirs:?}"
                ));
            }
        }
        for h in st.masters() {
            for &o in settled {
                if o != d && mutual(w, d, o) && !w.station(o).contains(h) {
                    return Err(format!(
                        "node {o} is in the session of node {d} but lacks its object {h:?}"
                    ));
                }
            }
        }
    }
    Ok(())
}

/// Without faults, every call succeeds and every action reaches every copy.
fn calm(w: &World) -> Result<(), String> {
    if let Some(c) = w.calls.iter().find(|c| c.ctx.outcome() != Outcome::Success) {
        return Err(format!(
            "calm run: apply #{} of node {} ended {:?}",
            c.seq,
            c.node,
            c.ctx.outcome()
        ));
    }
    let runs = probe::with_journal(|j| j.action_runs.clone());
    for (&(h, sender), &(to_master, to_duplicas)) in &w.notes_sent {
        for i in 0..w.slots.len() {
            let st = w.station(i);
            let Some(r) = st.get::<Probe>(h) else {
                continue;
            };
            let want = to_master + if r.is_master() { 0 } else { to_duplicas };
            let got = runs.get(&(w.uid(i), h, sender)).copied().unwrap_or(0);
            if got != want {
                return Err(format!(
                    "calm run: node {i} ran {got} notes of {sender:#x} on {h:?}, {want} were sent"
                ));
            }
        }
    }
    Ok(())
}

//! The swarm's object class and the journal its methods write to.
//!
//! `Probe` is a hand-written DO class with one dataset and two methods:
//! the RMC `apply` (adds to the value on the master and returns what it
//! saw) and the action `note` (changes nothing, it is only journalled).
//! Every execution is written to a per-thread journal that checks, as it
//! goes, that each station executes what one sender sent it once and in
//! the order it was sent.

use netz_core::*;
use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};

/// The RMC `apply(caller_uid, caller_id, substream, seq, delta) -> (seq, executor, value)`.
pub const APPLY: MethodId = MethodId(0);
/// The action `note(sender_uid, sender_id, seq, sent_as_master, view)`:
/// `view` counts the changes of the object's master the sender saw.
pub const NOTE: MethodId = MethodId(1);

/// The arguments of `apply`.
pub type ApplyArgs = (u64, u32, u8, u64, i64);
/// The result of `apply`: the sequence number, the executing station's id
/// and the value after the addition.
pub type ApplyResult = (u64, u32, i64);
/// The arguments of `note`.
pub type NoteArgs = (u64, u32, u64, bool, u32);

/// The replicated state of a probe.
#[derive(Default, Debug, Clone, PartialEq, Eq)]
pub struct ProbeData {
    /// Changed by updates and by `apply`.
    pub value: i64,
    /// Changed by updates (its length varies, so updates vary in size).
    pub label: String,
    /// Whether fault recovery keeps the object (travels with it, so the
    /// session master's duplica knows).
    pub recover: bool,
    received: u8,
}

impl DataSet for ProbeData {
    fn name(&self) -> &'static str {
        "ProbeData"
    }
    fn field_names(&self) -> &'static [&'static str] {
        &["value", "label", "recover"]
    }
    fn field_revisions(&self) -> &'static [u8] {
        &[0, 0, 0]
    }
    fn encode_field(&self, i: usize, out: &mut Vec<u8>) {
        match i {
            0 => encode_value(&self.value, out),
            1 => encode_value(&self.label, out),
            _ => encode_value(&self.recover, out),
        }
    }
    fn decode_field(&mut self, i: usize, input: &mut &[u8]) -> Result<(), DecodeError> {
        match i {
            0 => self.value = decode_value(input, "value")?,
            1 => self.label = decode_value(input, "label")?,
            _ => self.recover = decode_value(input, "recover")?,
        }
        Ok(())
    }
    fn received_revision(&self) -> u8 {
        self.received
    }
    fn set_received_revision(&mut self, r: u8) {
        self.received = r;
    }
}

/// The swarm's object.
#[derive(Default, Debug)]
pub struct Probe {
    /// Its one dataset.
    pub data: ProbeData,
}

impl Probe {
    /// A new master's state.
    pub fn new(value: i64, label: String, recover: bool) -> Probe {
        Probe {
            data: ProbeData {
                value,
                label,
                recover,
                received: 0,
            },
        }
    }
}

impl DoClass for Probe {
    const CLASS_NAME: &'static str = "Probe";
    const METHODS: &'static [MethodInfo] = &[
        MethodInfo {
            name: "apply",
            kind: MethodKind::Rmc,
        },
        MethodInfo {
            name: "note",
            kind: MethodKind::Action,
        },
    ];
    type Proxy<'a> = ObjectProxy<'a, Self>;
    fn new_duplica() -> Self {
        Probe::default()
    }
    fn dataset_count(&self) -> usize {
        1
    }
    fn dataset(&self, i: usize) -> Option<&dyn DataSet> {
        (i == 0).then_some(&self.data as &dyn DataSet)
    }
    fn dataset_mut(&mut self, i: usize) -> Option<&mut dyn DataSet> {
        (i == 0).then_some(&mut self.data as &mut dyn DataSet)
    }
    fn approve_fault_recovery(&mut self) -> bool {
        self.data.recover
    }
    fn dispatch(
        &mut self,
        call: &mut CallContext<'_>,
        method: MethodId,
        args: &[u8],
    ) -> Result<Vec<u8>, DispatchError> {
        let executor = current_node();
        let me = call.local_station();
        let caller = call.caller();
        let handle = call.handle();
        let is_master = call.master_of(handle) == Some(me);
        match method {
            APPLY => {
                let (caller_uid, caller_id, substream, seq, delta): ApplyArgs =
                    postcard::from_bytes(args).map_err(|_| DispatchError::BadArguments)?;
                self.data.value = self.data.value.wrapping_add(delta);
                with_journal(|j| {
                    j.rmc(
                        executor, me, is_master, caller, caller_uid, caller_id, substream, seq,
                    )
                });
                postcard::to_allocvec(&(seq, me.0, self.data.value))
                    .map_err(|_| DispatchError::BadArguments)
            }
            NOTE => {
                let (sender_uid, sender_id, seq, sent_as_master, view): NoteArgs =
                    postcard::from_bytes(args).map_err(|_| DispatchError::BadArguments)?;
                // Sent straight to this station: by its sender to the master,
                // or by the master (running its own action) to a duplica.
                // Others travelled through a station the master left (which
                // may be the sender itself: then its view changed).
                let direct = caller.0 == sender_id && (is_master || sent_as_master);
                with_journal(|j| {
                    j.action(executor, handle, direct.then_some(view), sender_uid, seq)
                });
                Ok(Vec::new())
            }
            m => Err(DispatchError::UnknownMethod(m)),
        }
    }
}

/// A station's identity in the harness: its node index and incarnation
/// (a restarted node is a new station), `index << 16 | incarnation`.
pub type Uid = u64;

/// The uid of a node's incarnation.
pub fn uid(index: usize, incarnation: u32) -> Uid {
    ((index as u64) << 16) | u64::from(incarnation & 0xFFFF)
}

/// What the journal records and checks.
#[derive(Default, Debug)]
pub struct Journal {
    /// The last `apply` sequence number per (caller, executor, substream).
    rmc_last: BTreeMap<(Uid, Uid, u8), u64>,
    /// Every executed `apply` by (caller, substream, seq): the executor's
    /// uid and station id.
    pub rmc_done: BTreeMap<(Uid, u8, u64), (Uid, StationId)>,
    /// The last `note` sequence number per (executor, object, sender,
    /// sender's view of the master) for notes that came straight from
    /// their sender: sent while the sender's view of the object's master
    /// held, they arrive in order.
    action_last: BTreeMap<(Uid, DOHandle, Uid, u32), u64>,
    /// Every executed `note`: (executor, object, sender, seq).
    action_done: BTreeSet<(Uid, DOHandle, Uid, u64)>,
    /// How many `note`s each (executor, object) ran, per sender.
    pub action_runs: BTreeMap<(Uid, DOHandle, Uid), u64>,
    /// What broke the rules, in order.
    pub violations: Vec<String>,
    /// Executions counted.
    pub rmcs: u64,
    /// Action executions counted.
    pub actions: u64,
}

impl Journal {
    #[allow(clippy::too_many_arguments)]
    fn rmc(
        &mut self,
        executor: Uid,
        me: StationId,
        is_master: bool,
        caller: StationId,
        caller_uid: Uid,
        caller_id: u32,
        substream: u8,
        seq: u64,
    ) {
        self.rmcs += 1;
        if !is_master {
            self.violations.push(format!(
                "apply #{seq} of {caller_uid:#x} ran on {me} ({executor:#x}), which is not the master (the call requires it)"
            ));
        }
        if caller.0 != caller_id {
            self.violations.push(format!(
                "apply #{seq} of {caller_uid:#x} ran on {me} as from {caller}, but {caller_id} sent it"
            ));
        }
        if let Some(&last) = self.rmc_last.get(&(caller_uid, executor, substream)) {
            if seq <= last {
                self.violations.push(format!(
                    "apply #{seq} of {caller_uid:#x} on sub-stream {substream} ran on {me} ({executor:#x}) after #{last}: {}",
                    if seq == last { "twice" } else { "out of order" }
                ));
            }
        }
        self.rmc_last.insert((caller_uid, executor, substream), seq);
        if let Some(prev) = self
            .rmc_done
            .insert((caller_uid, substream, seq), (executor, me))
        {
            self.violations.push(format!(
                "apply #{seq} of {caller_uid:#x} ran on {me} ({executor:#x}) and before on {} ({:#x})",
                prev.1, prev.0
            ));
        }
    }

    fn action(
        &mut self,
        executor: Uid,
        handle: DOHandle,
        direct: Option<u32>,
        sender_uid: Uid,
        seq: u64,
    ) {
        self.actions += 1;
        *self
            .action_runs
            .entry((executor, handle, sender_uid))
            .or_default() += 1;
        if !self.action_done.insert((executor, handle, sender_uid, seq)) {
            self.violations.push(format!(
                "note #{seq} of {sender_uid:#x} ran twice on {executor:#x} for {handle:?}"
            ));
        }
        if let Some(view) = direct {
            let key = (executor, handle, sender_uid, view);
            if let Some(&last) = self.action_last.get(&key) {
                if seq < last {
                    self.violations.push(format!(
                        "note #{seq} of {sender_uid:#x} ran on {executor:#x} for {handle:?} after #{last}"
                    ));
                }
            }
            self.action_last.insert(key, seq);
        }
    }
}

thread_local! {
    static JOURNAL: RefCell<Journal> = RefCell::new(Journal::default());
    static CURRENT: std::cell::Cell<Uid> = const { std::cell::Cell::new(u64::MAX) };
}

/// Runs `f` on this thread's journal.
pub fn with_journal<R>(f: impl FnOnce(&mut Journal) -> R) -> R {
    JOURNAL.with(|j| f(&mut j.borrow_mut()))
}

/// Starts a fresh journal on this thread.
pub fn reset_journal() {
    JOURNAL.with(|j| *j.borrow_mut() = Journal::default());
}

/// The uid of the station the harness is driving right now.
pub fn current_node() -> Uid {
    CURRENT.with(|c| c.get())
}

/// Runs `f` as node `uid` (executions inside are journalled as its).
pub fn as_node<R>(uid: Uid, f: impl FnOnce() -> R) -> R {
    let before = CURRENT.with(|c| c.replace(uid));
    let r = f();
    CURRENT.with(|c| c.set(before));
    r
}

/// The registry of the swarm's stations.
pub fn registry() -> std::sync::Arc<Registry> {
    let mut r = Registry::new();
    if let Err(e) = r.register::<Probe>() {
        panic!("the probe class registers: {e}");
    }
    std::sync::Arc::new(r)
}

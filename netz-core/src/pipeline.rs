//! The operation pipeline's user hooks: the SafetyExecutive (14.3.2),
//! prioritized operation callbacks (14.3.5), tracing (14.3) and join approval
//! (14.3.4).
//!
//! Every operation passes, in this order: SafetyExecutive (skipped for a
//! trusted origin) -> callbacks with priority < 0, lowest first ->
//! `OperationBegin` (datasets, then the object) -> the operation itself
//! (priority 0) -> `OperationEnd` (datasets, then the object) -> callbacks
//! with priority > 0. A rejected operation changes nothing and runs the
//! invalid-operation callbacks.

use crate::ids::{DOHandle, StationId};
pub(crate) use crate::object::StoreAccess;
pub use crate::object::StoreView;
use crate::operation::{JoinSessionOperation, Operation, OperationKind};
use std::collections::HashSet;

/// The lowest priority a callback may have.
pub const MIN_PRIORITY: i32 = -1024;
/// The highest priority a callback may have.
pub const MAX_PRIORITY: i32 = 1024;
/// Priorities the system uses itself: `OperationBegin` (-1), the operation (0)
/// and `OperationEnd` (1). Callbacks cannot take them.
pub const SYSTEM_PRIORITIES: [i32; 3] = [-1, 0, 1];

/// Why a callback could not be registered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CallbackError {
    /// Outside -1024..=1024.
    #[error("priority {0} is out of range (-1024..=1024)")]
    OutOfRange(i32),
    /// Used by the system itself.
    #[error("priority {0} is reserved by the system (-1 OperationBegin, 0 the operation, 1 OperationEnd)")]
    Reserved(i32),
}

/// Identifies a registered callback, to unregister it.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Hash)]
pub struct CallbackId(u64);

type Check = Box<dyn FnMut(&Operation, &StoreView<'_>) -> bool + Send>;
type Invalid = Box<dyn FnMut(&Operation) + Send>;
type Callback = Box<dyn FnMut(&mut Operation) + Send>;
type TraceFilter = Box<dyn Fn(&Operation) -> bool + Send>;
type JoinApproval = Box<dyn FnMut(&mut JoinSessionOperation) + Send>;

struct Registered {
    id: CallbackId,
    priority: i32,
    kind: Option<OperationKind>,
    f: Callback,
}

/// The hooks of one station.
pub(crate) struct Hooks {
    pub(crate) trust_local: bool,
    trusted: HashSet<StationId>,
    checks: Vec<Check>,
    invalid: Vec<Invalid>,
    callbacks: Vec<Registered>,
    next_id: u64,
    trace_filter: Option<TraceFilter>,
    pub(crate) trace_log: bool,
    pub(crate) traced: Vec<String>,
    pub(crate) join_approval: Option<JoinApproval>,
    /// Objects whose method runs right now (locked), innermost last.
    pub(crate) busy: Vec<DOHandle>,
}

impl Default for Hooks {
    fn default() -> Self {
        Hooks {
            trust_local: true,
            trusted: HashSet::new(),
            checks: Vec::new(),
            invalid: Vec::new(),
            callbacks: Vec::new(),
            next_id: 1,
            trace_filter: None,
            trace_log: false,
            traced: Vec::new(),
            join_approval: None,
            busy: Vec::new(),
        }
    }
}

impl Hooks {
    pub(crate) fn trust_station(&mut self, id: StationId, trusted: bool) {
        if trusted {
            self.trusted.insert(id);
        } else {
            self.trusted.remove(&id);
        }
    }

    pub(crate) fn is_trusted(&self, origin: StationId, local: StationId) -> bool {
        if origin == local || !origin.is_some() {
            self.trust_local
        } else {
            self.trusted.contains(&origin)
        }
    }

    pub(crate) fn add_check(&mut self, f: Check) {
        self.checks.push(f);
    }

    pub(crate) fn add_invalid(&mut self, f: Invalid) {
        self.invalid.push(f);
    }

    /// Runs every custom check; all must approve.
    pub(crate) fn check(&mut self, op: &Operation, store: &dyn StoreAccess) -> bool {
        let view = StoreView::new(store, &self.busy);
        let mut ok = true;
        for c in &mut self.checks {
            if !c(op, &view) {
                ok = false;
                break;
            }
        }
        ok
    }

    pub(crate) fn rejected(&mut self, op: &Operation) {
        for f in &mut self.invalid {
            f(op);
        }
    }

    pub(crate) fn register(
        &mut self,
        kind: Option<OperationKind>,
        priority: i32,
        f: Callback,
    ) -> Result<CallbackId, CallbackError> {
        if !(MIN_PRIORITY..=MAX_PRIORITY).contains(&priority) {
            return Err(CallbackError::OutOfRange(priority));
        }
        if SYSTEM_PRIORITIES.contains(&priority) {
            return Err(CallbackError::Reserved(priority));
        }
        let id = CallbackId(self.next_id);
        self.next_id += 1;
        // Stable: equal priorities run in registration order.
        let pos = self.callbacks.partition_point(|r| r.priority <= priority);
        self.callbacks.insert(
            pos,
            Registered {
                id,
                priority,
                kind,
                f,
            },
        );
        Ok(id)
    }

    pub(crate) fn unregister(&mut self, id: CallbackId) -> bool {
        let before = self.callbacks.len();
        self.callbacks.retain(|r| r.id != id);
        before != self.callbacks.len()
    }

    /// Runs the callbacks on one side of the operation (`before` = negative priorities).
    pub(crate) fn run_callbacks(&mut self, op: &mut Operation, before: bool) {
        let kind = op.get_type();
        for r in &mut self.callbacks {
            if (r.priority < 0) == before && r.kind.is_none_or(|k| k == kind) {
                (r.f)(op);
            }
        }
    }

    pub(crate) fn set_trace_filter(&mut self, f: TraceFilter) {
        self.trace_filter = Some(f);
    }

    /// Traces `op` when the trace flag is set and the filter (by default:
    /// user objects and session operations) accepts it.
    pub(crate) fn trace(&mut self, op: &Operation) {
        if !self.trace_log {
            return;
        }
        let keep = match &self.trace_filter {
            Some(f) => f(op),
            None => op.associated_do().is_none() || op.is_user_do(),
        };
        if keep {
            let line = format!(
                "{} {} do={:?} class={} origin={}",
                op.local_station(),
                op.class_name(),
                op.associated_do(),
                op.associated_class_name().unwrap_or("-"),
                op.origin()
            );
            tracing::debug!(target: "netz::operation", "{line}");
            self.traced.push(line);
        }
    }
}

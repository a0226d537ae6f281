//! RMC call contexts (NetZ `RMCContext` / `DOCallContext`, 14.1).

use crate::ids::StationId;
use serde::de::DeserializeOwned;
use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

/// A flag of an RMC context. Flags combine; see [`RmcContext::set_flag`].
#[derive(Clone, Copy, PartialEq, Eq, Debug, Hash)]
#[non_exhaustive]
pub enum RmcFlag {
    /// The caller waits for completion (default). Clear it for an asynchronous call.
    ///
    /// The sans-IO core never blocks and does not read this flag: a call
    /// made through a `call_*` stub always runs asynchronously, and the
    /// caller chooses how to wait ([`RmcContext::wait`],
    /// [`RmcContext::completion`], or stepping the station). The typed calls
    /// of netz-net give it its meaning: awaiting an `RmcCall` waits for the
    /// reply (set), `RmcCall::detach` clears it and returns the context of a
    /// call that goes on by itself.
    SynchronousCall,
    /// No reply is expected; the context completes when the message is sent.
    /// Allows several targets and ignores a return value.
    OneWayCall,
    /// The call only runs if the target object is the master on the target station.
    TargetObjectMustBeMaster,
    /// The call only runs if the target station has authority over the object
    /// (in netz, authority is held by the master).
    TargetObjectMustHaveAuthority,
    /// On a target validation failure, the call is sent again to the object's
    /// current master (void RMCs only).
    RetryOnTargetValidationFailure,
    /// Target: the station holding the object's master.
    CallOnMaster,
    /// Target: the local station.
    CallOnLocalStation,
    /// Target (one-way only, master only): every station holding a duplica.
    CallOnDuplicas,
    /// Target (one-way only): every other station of the session.
    CallOnNeighbouringStations,
}

impl RmcFlag {
    fn bit(self) -> u16 {
        1 << (self as u16)
    }
}

/// The progress of a call (NetZ `CallContext::State`).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
#[non_exhaustive]
pub enum CallState {
    /// Not started (new or reset).
    Available,
    /// Sent, waiting for completion.
    CallInProgress,
    /// Completed with success.
    CallSuccess,
    /// Completed with a failure; see the outcome.
    CallFailure,
}

/// How a call ended (NetZ `CallContext::Outcome`).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
#[non_exhaustive]
pub enum Outcome {
    /// No outcome yet.
    Unknown,
    /// The call ran and (for returning RMCs) its result is available.
    Success,
    /// The target object was not master (or had no authority) on the target station.
    TargetValidationFailure,
    /// The target station does not know the object.
    TargetObjectNotFound,
    /// The target's class does not know the method id (NetZ `ErrorRMCDispatchFailed`).
    ErrorRMCDispatchFailed,
    /// The arguments or the result could not be decoded.
    ErrorInvalidArguments,
    /// The target station is not (or no longer) reachable in the session.
    StationUnreachable,
    /// The call was rejected by the target's SafetyExecutive.
    RejectedBySafetyExecutive,
    /// The context's targets or flags do not make a valid call.
    ErrorInvalidContext,
    /// The caller cancelled the call.
    Cancelled,
    /// No reply came within the RMC timeout.
    TimedOut,
}

impl Outcome {
    pub(crate) fn to_wire(self) -> u8 {
        match self {
            Outcome::Unknown => 0,
            Outcome::Success => 1,
            Outcome::TargetValidationFailure => 2,
            Outcome::TargetObjectNotFound => 3,
            Outcome::ErrorRMCDispatchFailed => 4,
            Outcome::ErrorInvalidArguments => 5,
            Outcome::StationUnreachable => 6,
            Outcome::RejectedBySafetyExecutive => 7,
            Outcome::ErrorInvalidContext => 8,
            Outcome::Cancelled => 9,
            Outcome::TimedOut => 10,
        }
    }

    pub(crate) fn from_wire(v: u8) -> Outcome {
        match v {
            1 => Outcome::Success,
            2 => Outcome::TargetValidationFailure,
            3 => Outcome::TargetObjectNotFound,
            4 => Outcome::ErrorRMCDispatchFailed,
            5 => Outcome::ErrorInvalidArguments,
            6 => Outcome::StationUnreachable,
            7 => Outcome::RejectedBySafetyExecutive,
            8 => Outcome::ErrorInvalidContext,
            9 => Outcome::Cancelled,
            10 => Outcome::TimedOut,
            _ => Outcome::Unknown,
        }
    }
}

#[derive(Debug)]
pub(crate) struct RmcInner {
    pub(crate) flags: u16,
    pub(crate) target: Option<StationId>,
    pub(crate) substream: u8,
    pub(crate) state: CallState,
    pub(crate) outcome: Outcome,
    pub(crate) result: Option<Vec<u8>>,
    /// Incremented on every new call and reset so late replies are ignored.
    pub(crate) generation: u64,
    /// The first task waiting for completion (most calls have one: kept
    /// apart so that waiting allocates nothing), then any others.
    pub(crate) waker: Option<Waker>,
    pub(crate) wakers: Vec<Waker>,
    /// Threads blocked in [`RmcContext::wait`]: the condition variable is
    /// only notified when there are some (notifying costs a system call
    /// even when nobody waits).
    pub(crate) blocked: u32,
}

/// The shared, type-erased part of an [`RmcContext`]; the station keeps one
/// of these for each call in flight.
#[derive(Debug)]
pub struct RmcShared {
    pub(crate) inner: Mutex<RmcInner>,
    cond: Condvar,
}

impl RmcShared {
    pub(crate) fn lock(&self) -> MutexGuard<'_, RmcInner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Completes the call of `generation` (ignored if the context moved on).
    pub(crate) fn complete(
        &self,
        generation: u64,
        outcome: Outcome,
        result: Option<Vec<u8>>,
    ) -> bool {
        let (waker, wakers, blocked) = {
            let mut g = self.lock();
            if g.generation != generation || g.state != CallState::CallInProgress {
                return false;
            }
            g.outcome = outcome;
            g.state = if outcome == Outcome::Success {
                CallState::CallSuccess
            } else {
                CallState::CallFailure
            };
            g.result = result;
            (g.waker.take(), std::mem::take(&mut g.wakers), g.blocked > 0)
        };
        if blocked {
            self.cond.notify_all();
        }
        if let Some(w) = waker {
            w.wake();
        }
        for w in wakers {
            w.wake();
        }
        true
    }

    /// Wakes the tasks awaiting the call without completing it (they poll
    /// again and see that it is still running).
    pub(crate) fn wake_waiting(&self) {
        let (waker, wakers) = {
            let mut g = self.lock();
            (g.waker.take(), std::mem::take(&mut g.wakers))
        };
        if let Some(w) = waker {
            w.wake();
        }
        for w in wakers {
            w.wake();
        }
    }

    pub(crate) fn begin(&self) -> u64 {
        let mut g = self.lock();
        g.generation += 1;
        g.state = CallState::CallInProgress;
        g.outcome = Outcome::Unknown;
        g.result = None;
        g.generation
    }
}

/// The context of an RMC call: its targets, flags, state, outcome and, for a
/// returning RMC, its result of type `R`.
///
/// A context is cheap to clone; clones share the same call. In the sans-IO
/// core nothing blocks: poll with [`RmcContext::is_complete`] or
/// `wait(Duration::ZERO)`, drive the simulator until completion, or await
/// [`RmcContext::completion`]. [`RmcContext::wait`] with a non-zero timeout
/// blocks the calling thread and is only useful when another thread drives
/// the station.
pub struct RmcContext<R = ()> {
    pub(crate) shared: Arc<RmcShared>,
    _result: PhantomData<fn() -> R>,
}

impl<R> Clone for RmcContext<R> {
    fn clone(&self) -> Self {
        RmcContext {
            shared: self.shared.clone(),
            _result: PhantomData,
        }
    }
}

impl<R> std::fmt::Debug for RmcContext<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let g = self.shared.lock();
        f.debug_struct("RmcContext")
            .field("state", &g.state)
            .field("outcome", &g.outcome)
            .field("target", &g.target)
            .finish()
    }
}

impl<R> Default for RmcContext<R> {
    fn default() -> Self {
        Self::new()
    }
}

impl<R> RmcContext<R> {
    /// A synchronous context with no target yet.
    pub fn new() -> Self {
        RmcContext {
            shared: Arc::new(RmcShared {
                inner: Mutex::new(RmcInner {
                    flags: RmcFlag::SynchronousCall.bit(),
                    target: None,
                    substream: 0,
                    state: CallState::Available,
                    outcome: Outcome::Unknown,
                    result: None,
                    generation: 0,
                    waker: None,
                    wakers: Vec::new(),
                    blocked: 0,
                }),
                cond: Condvar::new(),
            }),
            _result: PhantomData,
        }
    }

    /// A context targeting `station`; `synchronous` sets or clears `SynchronousCall`
    /// (NetZ `RMCContext(station, bSynchronous)`).
    pub fn with_target(station: StationId, synchronous: bool) -> Self {
        let c = Self::new();
        c.set_target_station(station);
        if !synchronous {
            c.clear_flag(RmcFlag::SynchronousCall);
        }
        c
    }

    /// A context that calls the object's master.
    pub fn on_master() -> Self {
        let c = Self::new();
        c.set_flag(RmcFlag::CallOnMaster);
        c
    }

    /// Sets the target station.
    pub fn set_target_station(&self, station: StationId) {
        self.shared.lock().target = Some(station);
    }

    /// The explicit target station, if set.
    pub fn target_station(&self) -> Option<StationId> {
        self.shared.lock().target
    }

    /// Sets a flag.
    pub fn set_flag(&self, flag: RmcFlag) {
        self.shared.lock().flags |= flag.bit();
    }

    /// Clears a flag.
    pub fn clear_flag(&self, flag: RmcFlag) {
        self.shared.lock().flags &= !flag.bit();
    }

    /// Whether a flag is set.
    pub fn flag_is_set(&self, flag: RmcFlag) -> bool {
        self.shared.lock().flags & flag.bit() != 0
    }

    /// Picks the reliable sub-stream the call (and its reply) travels on.
    pub fn set_sub_stream_id(&self, substream: u8) {
        self.shared.lock().substream = substream;
    }

    /// The sub-stream id.
    pub fn sub_stream_id(&self) -> u8 {
        self.shared.lock().substream
    }

    /// The call's state.
    pub fn state(&self) -> CallState {
        self.shared.lock().state
    }

    /// The call's outcome.
    pub fn outcome(&self) -> Outcome {
        self.shared.lock().outcome
    }

    /// Whether the call has completed (successfully or not).
    pub fn is_complete(&self) -> bool {
        matches!(
            self.state(),
            CallState::CallSuccess | CallState::CallFailure
        )
    }

    /// Waits for completion: returns at once when `timeout` is zero; otherwise
    /// blocks this thread until the call completes or `timeout` passes (another
    /// thread must be driving the station). Returns whether the call completed.
    pub fn wait(&self, timeout: Duration) -> bool {
        let mut g = self.shared.lock();
        let done =
            |g: &RmcInner| matches!(g.state, CallState::CallSuccess | CallState::CallFailure);
        if done(&g) || timeout.is_zero() || g.state != CallState::CallInProgress {
            return done(&g);
        }
        // Counted under the lock, so that a completion (which takes it too)
        // sees this thread before it decides whether to notify.
        g.blocked += 1;
        let (mut g, _) = self
            .shared
            .cond
            .wait_timeout_while(g, timeout, |g| g.state == CallState::CallInProgress)
            .unwrap_or_else(|e| e.into_inner());
        g.blocked -= 1;
        done(&g)
    }

    /// Cancels the call: the outcome becomes `Cancelled` and a late reply is ignored.
    pub fn cancel(&self) {
        let generation = self.shared.lock().generation;
        self.shared.complete(generation, Outcome::Cancelled, None);
    }

    /// Makes the context reusable for a new call (keeps targets and flags).
    pub fn reset(&self) {
        let mut g = self.shared.lock();
        g.generation += 1;
        g.state = CallState::Available;
        g.outcome = Outcome::Unknown;
        g.result = None;
    }

    /// A future that resolves with the outcome once the call completes.
    pub fn completion(&self) -> Completion {
        Completion {
            shared: self.shared.clone(),
        }
    }

    /// The type-erased shared state (used by generated stubs and drivers).
    pub fn shared(&self) -> &Arc<RmcShared> {
        &self.shared
    }
}

impl<R: DeserializeOwned> RmcContext<R> {
    /// The call's result, once it completed with success.
    pub fn result(&self) -> Option<R> {
        let g = self.shared.lock();
        if g.state != CallState::CallSuccess {
            return None;
        }
        let bytes = g.result.as_deref()?;
        postcard::from_bytes(bytes).ok()
    }
}

/// A future resolving with the outcome of a call (see [`RmcContext::completion`]).
pub struct Completion {
    shared: Arc<RmcShared>,
}

impl Future for Completion {
    type Output = Outcome;
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Outcome> {
        let mut g = self.shared.lock();
        match g.state {
            CallState::CallSuccess | CallState::CallFailure => Poll::Ready(g.outcome),
            CallState::Available => Poll::Ready(Outcome::Unknown),
            CallState::CallInProgress => {
                let w = cx.waker();
                match &g.waker {
                    None => g.waker = Some(w.clone()),
                    Some(first) if first.will_wake(w) => {}
                    Some(_) => {
                        if !g.wakers.iter().any(|o| o.will_wake(w)) {
                            g.wakers.push(w.clone());
                        }
                    }
                }
                Poll::Pending
            }
        }
    }
}

/// Flag bits as sent on the wire and checked by the callee.
pub(crate) mod bits {
    use super::RmcFlag;
    pub fn has(flags: u16, f: RmcFlag) -> bool {
        flags & f.bit() != 0
    }
}

//! Typed async calls: `station.remote::<Arena>(h).shoot(t).on_master().await`.
//!
//! `#[doclass]` generates, for every class, a remote type (`ArenaRemote` for
//! `Arena`) with one method per RMC and per action. An RMC's method returns
//! an [`RmcCall`], a small builder of the call's targets and flags that is
//! awaited (it implements [`IntoFuture`]) and resolves with
//! `Result<R, CallError>`, `R` being the return value together with the out
//! and in-out parameters (a tuple when there are several, `()` when there
//! are none). An action's method returns an [`ActionCall`].
//!
//! The RMC is sent when the builder is awaited (turned into its future), on
//! the station's current state. **Dropping the future before it resolves
//! cancels the call** ([`RmcContext::cancel`]): a reply that arrives later
//! is ignored. Use [`RmcCall::detach`] for a call that goes on by itself
//! (NetZ's asynchronous call, `SynchronousCall` cleared).
//!
//! The bool-returning `call_*` stubs of the class's proxy stay for the
//! sans-IO [`netz_core::Station`].

use crate::error::NetError;
use crate::station::{CallWait, NetStation};
use netz_core::rmc::{RmcContext, RmcFlag};
use netz_core::{
    decode_value, encode_value, ActionTarget, DOHandle, DoClass, Invoker, MethodId, Outcome, Ref,
    StationId,
};
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::any::TypeId;
use std::future::{Future, IntoFuture};
use std::marker::PhantomData;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

/// Why a typed RMC or action failed: every failure [`Outcome`] of the core,
/// and the driver's own errors.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CallError {
    /// The target object was not the master (or had no authority) on the
    /// target station (`.target_must_be_master()`, `Outcome::TargetValidationFailure`).
    #[error("target validation failed: the object is not the master on the target station")]
    TargetValidationFailure,
    /// The target station (or this one) does not know the object
    /// (`Outcome::TargetObjectNotFound`).
    #[error("the target station does not know the object")]
    TargetObjectNotFound,
    /// The target's class does not know the method, typically an older build
    /// of the class (`Outcome::ErrorRMCDispatchFailed`).
    #[error("dispatch failed: the target's class does not know this method (an older build?)")]
    DispatchFailed,
    /// The arguments could not be decoded by the target, or its reply by us
    /// (`Outcome::ErrorInvalidArguments`).
    #[error("invalid arguments or reply: the two builds disagree on the method's signature")]
    InvalidArguments,
    /// The target station is not (or no longer) reachable in the session
    /// (`Outcome::StationUnreachable`).
    #[error("the target station is unreachable")]
    Unreachable,
    /// The target's SafetyExecutive rejected the call
    /// (`Outcome::RejectedBySafetyExecutive`).
    #[error("rejected by the target's SafetyExecutive")]
    RejectedBySafetyExecutive,
    /// The targets and flags do not make a valid call, e.g. two targets for
    /// a call that waits for a reply (`Outcome::ErrorInvalidContext`).
    #[error("invalid call: the targets and flags do not make a valid call")]
    InvalidContext,
    /// The call was cancelled (`Outcome::Cancelled`).
    #[error("the call was cancelled")]
    Cancelled,
    /// No reply came in time: the station's RMC timeout
    /// (`Outcome::TimedOut`) or the call's own [`RmcCall::timeout`].
    #[error("timed out waiting for the reply")]
    TimedOut,
    /// The call was not sent (no such object here, or the arguments could
    /// not be encoded).
    #[error("the call was not sent: no such object, or the arguments could not be encoded")]
    NotSent,
    /// The station's driver has stopped.
    #[error("the station driver has stopped")]
    Stopped,
    /// An outcome this version does not know.
    #[error("the call failed: {0:?}")]
    Other(Outcome),
}

impl CallError {
    /// The error for a failure `outcome` (`None` for `Success`).
    pub fn from_outcome(outcome: Outcome) -> Option<CallError> {
        Some(match outcome {
            Outcome::Success => return None,
            Outcome::TargetValidationFailure => CallError::TargetValidationFailure,
            Outcome::TargetObjectNotFound => CallError::TargetObjectNotFound,
            Outcome::ErrorRMCDispatchFailed => CallError::DispatchFailed,
            Outcome::ErrorInvalidArguments => CallError::InvalidArguments,
            Outcome::StationUnreachable => CallError::Unreachable,
            Outcome::RejectedBySafetyExecutive => CallError::RejectedBySafetyExecutive,
            Outcome::ErrorInvalidContext => CallError::InvalidContext,
            Outcome::Cancelled => CallError::Cancelled,
            Outcome::TimedOut => CallError::TimedOut,
            other => CallError::Other(other),
        })
    }
}

impl From<NetError> for CallError {
    fn from(e: NetError) -> Self {
        match e {
            NetError::Stopped => CallError::Stopped,
            NetError::TimedOut(_) => CallError::TimedOut,
            NetError::NotInSession => CallError::Unreachable,
            _ => CallError::NotSent,
        }
    }
}

/// A class with a generated remote type; implemented by `#[doclass]`.
pub trait RemoteClass: DoClass {
    /// The class's remote type (`ArenaRemote` for `Arena`).
    type Remote: From<RemoteObject<Self>>;
}

/// An object of class `T` seen from a [`NetStation`]: the base of every
/// generated remote type, which dereferences to it. Get one with
/// [`NetStation::remote`].
pub struct RemoteObject<T> {
    station: NetStation,
    handle: DOHandle,
    _class: PhantomData<fn() -> T>,
}

impl<T> Clone for RemoteObject<T> {
    fn clone(&self) -> Self {
        RemoteObject {
            station: self.station.clone(),
            handle: self.handle,
            _class: PhantomData,
        }
    }
}

impl<T> std::fmt::Debug for RemoteObject<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "RemoteObject({:?})", self.handle)
    }
}

impl<T: DoClass> RemoteObject<T> {
    /// The object `handle` of class `T` on `station`.
    pub fn new(station: NetStation, handle: DOHandle) -> Self {
        RemoteObject {
            station,
            handle,
            _class: PhantomData,
        }
    }

    /// The object's handle.
    pub fn handle(&self) -> DOHandle {
        self.handle
    }

    /// The station the calls go through.
    pub fn station(&self) -> &NetStation {
        &self.station
    }

    /// An RMC `method` with `args` (the tuple of the in and in-out
    /// arguments) whose reply decodes as `R`; what the generated methods
    /// call.
    pub fn rmc<R: DeserializeOwned + 'static>(
        &self,
        method: MethodId,
        args: &impl Serialize,
    ) -> RmcCall<R> {
        let mut bytes = Vec::new();
        encode_value(args, &mut bytes);
        RmcCall {
            station: self.station.clone(),
            handle: self.handle,
            method,
            args: bytes,
            settings: Settings::on_master(),
            timeout: None,
            _reply: PhantomData,
        }
    }

    /// An action `method` with `args` (the tuple of its arguments); what the
    /// generated methods call.
    pub fn action(&self, method: MethodId, args: &impl Serialize) -> ActionCall {
        let mut bytes = Vec::new();
        encode_value(args, &mut bytes);
        ActionCall {
            station: self.station.clone(),
            handle: self.handle,
            method,
            args: bytes,
            target: ActionTarget::Master,
        }
    }
}

impl NetStation {
    /// The typed calls of object `handle` of class `T`: one method per RMC
    /// and action of the class, generated by `#[doclass]`.
    ///
    /// ```ignore
    /// let (hit, score) = station.remote::<Arena>(h).shoot(target).on_master().await?;
    /// station.remote::<Arena>(h).reset().await?;
    /// ```
    pub fn remote<T: RemoteClass>(&self, handle: DOHandle) -> T::Remote {
        T::Remote::from(RemoteObject::new(self.clone(), handle))
    }

    /// [`NetStation::remote`] for the object behind `object`.
    pub fn remote_ref<T: RemoteClass>(&self, object: &Ref<T>) -> T::Remote {
        self.remote::<T>(object.handle())
    }
}

/// The targets and flags of a call, applied to its context when it is sent.
#[derive(Clone, Debug)]
struct Settings {
    flags: Vec<RmcFlag>,
    target: Option<StationId>,
    substream: u8,
}

impl Settings {
    fn on_master() -> Self {
        Settings {
            flags: vec![RmcFlag::CallOnMaster],
            target: None,
            substream: 0,
        }
    }

    /// Drops the earlier target.
    fn retarget(&mut self) {
        self.flags.retain(|f| {
            !matches!(
                f,
                RmcFlag::CallOnMaster
                    | RmcFlag::CallOnLocalStation
                    | RmcFlag::CallOnDuplicas
                    | RmcFlag::CallOnNeighbouringStations
            )
        });
        self.target = None;
    }

    fn context<R>(&self) -> RmcContext<R> {
        let ctx = RmcContext::new();
        for f in &self.flags {
            ctx.set_flag(*f);
        }
        if let Some(t) = self.target {
            ctx.set_target_station(t);
        }
        ctx.set_sub_stream_id(self.substream);
        ctx
    }
}

/// A typed RMC, not sent yet: set its targets and flags, then `.await` it.
///
/// The default target is the object's master. Awaiting sends the call and
/// resolves with the reply `R` or a [`CallError`]; dropping the future
/// before then cancels the call.
#[must_use = "an RMC is sent when it is awaited (or detached)"]
pub struct RmcCall<R> {
    station: NetStation,
    handle: DOHandle,
    method: MethodId,
    args: Vec<u8>,
    settings: Settings,
    timeout: Option<Duration>,
    _reply: PhantomData<fn() -> R>,
}

impl<R> std::fmt::Debug for RmcCall<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RmcCall")
            .field("handle", &self.handle)
            .field("method", &self.method)
            .field("settings", &self.settings)
            .field("timeout", &self.timeout)
            .finish()
    }
}

impl<R: DeserializeOwned + 'static> RmcCall<R> {
    /// Runs the call on the station holding the object's master (the default).
    pub fn on_master(mut self) -> Self {
        self.settings.retarget();
        self.settings.flags.push(RmcFlag::CallOnMaster);
        self
    }

    /// Runs the call on station `id` (which must hold the object).
    pub fn on_station(mut self, id: StationId) -> Self {
        self.settings.retarget();
        self.settings.target = Some(id);
        self
    }

    /// Runs the call on this station.
    pub fn on_local_station(mut self) -> Self {
        self.settings.retarget();
        self.settings.flags.push(RmcFlag::CallOnLocalStation);
        self
    }

    /// Runs the call only if the object is the master on the target station;
    /// otherwise it fails with [`CallError::TargetValidationFailure`].
    pub fn target_must_be_master(mut self) -> Self {
        self.settings.flags.push(RmcFlag::TargetObjectMustBeMaster);
        self
    }

    /// Sends the call (and its reply) on reliable sub-stream `n`: calls on
    /// one sub-stream run in order, calls on different sub-streams do not
    /// wait for each other.
    pub fn sub_stream(mut self, n: u8) -> Self {
        self.settings.substream = n;
        self
    }

    /// Gives up after `d` (then cancels the call and resolves with
    /// [`CallError::TimedOut`]); without it the station's RMC timeout applies.
    pub fn timeout(mut self, d: Duration) -> Self {
        self.timeout = Some(d);
        self
    }

    /// Sends the call without waiting for a reply (`OneWayCall`): the
    /// returned call resolves once sent, and a return value or out
    /// parameters are not delivered.
    pub fn one_way(mut self) -> OneWayCall {
        self.settings.flags.push(RmcFlag::OneWayCall);
        OneWayCall {
            station: self.station,
            handle: self.handle,
            method: self.method,
            args: self.args,
            settings: self.settings,
        }
    }

    /// Sends the call now and returns the future of its reply (what
    /// `.await` does first); dropping the future cancels the call.
    pub fn send(self) -> RmcFuture<R>
    where
        R: Send,
    {
        self.into_future()
    }

    /// Sends the call now and returns its context without waiting: the call
    /// goes on by itself (NetZ's asynchronous call, `SynchronousCall`
    /// cleared); poll [`RmcContext::outcome`] and [`RmcContext::result`], or
    /// await [`RmcContext::completion`]. Not cancelled on drop.
    pub fn detach(self) -> Result<RmcContext<R>, CallError> {
        let ctx = self.settings.context::<R>();
        ctx.clear_flag(RmcFlag::SynchronousCall);
        send_rmc(&self.station, self.handle, self.method, self.args, &ctx)?;
        Ok(ctx)
    }
}

fn send_rmc<R: 'static>(
    station: &NetStation,
    handle: DOHandle,
    method: MethodId,
    args: Vec<u8>,
    ctx: &RmcContext<R>,
) -> Result<(), CallError> {
    if station.is_stopped() {
        return Err(CallError::Stopped);
    }
    let returns = TypeId::of::<R>() != TypeId::of::<()>();
    if station.with(|st, _| st.invoke_rmc(handle, method, args, ctx.shared(), returns)) {
        return Ok(());
    }
    Err(CallError::from_outcome(ctx.outcome())
        .filter(|e| !matches!(e, CallError::Other(_)))
        .unwrap_or(CallError::NotSent))
}

impl<R: DeserializeOwned + Send + 'static> IntoFuture for RmcCall<R> {
    type Output = Result<R, CallError>;
    type IntoFuture = RmcFuture<R>;

    fn into_future(self) -> RmcFuture<R> {
        let ctx = self.settings.context::<R>();
        let error = send_rmc(&self.station, self.handle, self.method, self.args, &ctx).err();
        RmcFuture {
            wait: self.station.wait_call(&ctx),
            ctx,
            error,
            // Only a timeout of the call's own takes a timer: the core
            // times every call out after its RMC timeout.
            sleep: self.timeout.map(|d| Box::pin(tokio::time::sleep(d))),
            done: false,
        }
    }
}

/// The future of an awaited [`RmcCall`]. Dropping it before it resolves
/// cancels the call: its outcome becomes `Cancelled` and a late reply is
/// ignored.
#[must_use = "a future does nothing unless awaited; dropping it cancels the call"]
pub struct RmcFuture<R> {
    ctx: RmcContext<R>,
    wait: CallWait,
    error: Option<CallError>,
    sleep: Option<Pin<Box<tokio::time::Sleep>>>,
    done: bool,
}

impl<R> std::fmt::Debug for RmcFuture<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RmcFuture")
            .field("ctx", &self.ctx)
            .field("done", &self.done)
            .finish()
    }
}

impl<R> RmcFuture<R> {
    /// The context of the call (state, outcome), e.g. to look at it while
    /// the future is pending.
    pub fn context(&self) -> &RmcContext<R> {
        &self.ctx
    }
}

impl<R: DeserializeOwned> Future for RmcFuture<R> {
    type Output = Result<R, CallError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = &mut *self;
        if this.done {
            return Poll::Ready(Err(CallError::Cancelled));
        }
        if let Some(e) = this.error.take() {
            this.done = true;
            return Poll::Ready(Err(e));
        }
        if let Poll::Ready(waited) = Pin::new(&mut this.wait).poll(cx) {
            this.done = true;
            let outcome = match waited {
                Ok(outcome) => outcome,
                Err(e) => {
                    this.ctx.cancel();
                    return Poll::Ready(Err(e.into()));
                }
            };
            return Poll::Ready(match CallError::from_outcome(outcome) {
                // A reply with no bytes is the unit of a void RMC.
                None => this
                    .ctx
                    .result()
                    .or_else(|| decode_value::<R>(&mut &[][..], "reply").ok())
                    .ok_or(CallError::InvalidArguments),
                Some(e) => Err(e),
            });
        }
        if let Some(sleep) = this.sleep.as_mut() {
            if sleep.as_mut().poll(cx).is_ready() {
                this.done = true;
                this.ctx.cancel();
                return Poll::Ready(Err(CallError::TimedOut));
            }
        }
        Poll::Pending
    }
}

impl<R> Drop for RmcFuture<R> {
    fn drop(&mut self) {
        if !self.done {
            self.ctx.cancel();
        }
    }
}

/// A one-way RMC (see [`RmcCall::one_way`]): resolves with `Ok(())` once
/// sent. May target several stations.
#[must_use = "an RMC is sent when it is awaited (or sent)"]
pub struct OneWayCall {
    station: NetStation,
    handle: DOHandle,
    method: MethodId,
    args: Vec<u8>,
    settings: Settings,
}

impl std::fmt::Debug for OneWayCall {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OneWayCall")
            .field("handle", &self.handle)
            .field("method", &self.method)
            .finish()
    }
}

impl OneWayCall {
    /// Sends the call to every station holding a duplica (on the master's
    /// station only) instead of the earlier target.
    pub fn on_duplicas(mut self) -> Self {
        self.settings.retarget();
        self.settings.flags.push(RmcFlag::CallOnDuplicas);
        self
    }

    /// Sends the call to every other station of the session instead of
    /// the earlier target.
    pub fn on_neighbouring_stations(mut self) -> Self {
        self.settings.retarget();
        self.settings
            .flags
            .push(RmcFlag::CallOnNeighbouringStations);
        self
    }

    /// Sends the call now.
    pub fn send(self) -> Result<(), CallError> {
        let ctx = self.settings.context::<()>();
        send_rmc(&self.station, self.handle, self.method, self.args, &ctx).map(|_| ())
    }
}

impl IntoFuture for OneWayCall {
    type Output = Result<(), CallError>;
    type IntoFuture = std::future::Ready<Result<(), CallError>>;

    fn into_future(self) -> Self::IntoFuture {
        std::future::ready(self.send())
    }
}

/// A typed action, not sent yet: by default it runs on the master, which
/// then runs it on every duplica; `.await` it or [`ActionCall::send`] it.
#[must_use = "an action is sent when it is awaited or sent"]
pub struct ActionCall {
    station: NetStation,
    handle: DOHandle,
    method: MethodId,
    args: Vec<u8>,
    target: ActionTarget,
}

impl std::fmt::Debug for ActionCall {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ActionCall")
            .field("handle", &self.handle)
            .field("method", &self.method)
            .field("target", &self.target)
            .finish()
    }
}

impl ActionCall {
    /// Runs the action on the master, then on every duplica (the default;
    /// NetZ `<name>_OnMaster`).
    pub fn on_master(mut self) -> Self {
        self.target = ActionTarget::Master;
        self
    }

    /// Runs the action on every duplica only; only the master's station may
    /// (NetZ `<name>_OnDuplicas`).
    pub fn on_duplicas(mut self) -> Self {
        self.target = ActionTarget::Duplicas;
        self
    }

    /// Sends the action now.
    pub fn send(self) -> Result<(), CallError> {
        if self.station.is_stopped() {
            return Err(CallError::Stopped);
        }
        let sent = self
            .station
            .with(|st, _| st.invoke_action(self.handle, self.method, self.args, self.target));
        if sent {
            Ok(())
        } else {
            Err(CallError::NotSent)
        }
    }
}

impl IntoFuture for ActionCall {
    type Output = Result<(), CallError>;
    type IntoFuture = std::future::Ready<Result<(), CallError>>;

    fn into_future(self) -> Self::IntoFuture {
        std::future::ready(self.send())
    }
}

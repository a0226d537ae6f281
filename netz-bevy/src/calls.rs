//! Calls from systems: the [`Netz`] system parameter.

use crate::clock::NetzClock;
use crate::messages::{CallId, RmcCompleted};
use crate::objects::{NetzEntities, NetzObject};
use crate::station::NetzStation;
use bevy_ecs::entity::Entity;
use bevy_ecs::resource::Resource;
use bevy_ecs::system::{Query, Res, ResMut, SystemParam};
use netz_core::{DOHandle, DoClass, Instant, Outcome, Ref, RmcContext, Station, StationError};
use serde::de::DeserializeOwned;
use std::any::Any;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};

/// Something that completes later with an outcome and, perhaps, a value:
/// what [`Netz::track`] watches until it completes.
///
/// Implemented for [`RmcContext<R>`]; a typed call handle of another layer
/// (a future-based call, say) implements it to have its completion arrive
/// as an [`RmcCompleted`] message too.
pub trait CallCompletion: Send + Sync + 'static {
    /// `None` while the call runs; then its outcome and, on success, its
    /// value (`RmcCompleted::value` downcasts it).
    fn poll_completion(&mut self) -> Option<(Outcome, Option<Arc<dyn Any + Send + Sync>>)>;
}

impl<R: DeserializeOwned + Send + Sync + 'static> CallCompletion for RmcContext<R> {
    fn poll_completion(&mut self) -> Option<(Outcome, Option<Arc<dyn Any + Send + Sync>>)> {
        if !self.is_complete() {
            return None;
        }
        let value = self
            .result()
            .map(|v| Arc::new(v) as Arc<dyn Any + Send + Sync>);
        Some((self.outcome(), value))
    }
}

/// A future as a [`CallCompletion`]: the plugin polls it once per frame
/// (with a waker that does nothing: the frame is the wake-up) and maps its
/// output to an outcome and a value.
///
/// This is how a call API that returns futures (typed async calls) reaches
/// systems: `netz.track(entity, handle, FutureCall::new(fut, map))`.
pub struct FutureCall<F: Future, M> {
    future: Mutex<Pin<Box<F>>>,
    map: Option<M>,
}

impl<F: Future, M> FutureCall<F, M>
where
    M: FnOnce(F::Output) -> (Outcome, Option<Arc<dyn Any + Send + Sync>>),
{
    /// Watches `future`; `map` turns its output into the completion.
    pub fn new(future: F, map: M) -> Self {
        FutureCall {
            future: Mutex::new(Box::pin(future)),
            map: Some(map),
        }
    }
}

impl<F, M> CallCompletion for FutureCall<F, M>
where
    F: Future + Send + 'static,
    M: FnOnce(F::Output) -> (Outcome, Option<Arc<dyn Any + Send + Sync>>) + Send + Sync + 'static,
{
    fn poll_completion(&mut self) -> Option<(Outcome, Option<Arc<dyn Any + Send + Sync>>)> {
        self.map.as_ref()?;
        let future = self.future.get_mut().unwrap_or_else(|e| e.into_inner());
        let mut cx = Context::from_waker(Waker::noop());
        match future.as_mut().poll(&mut cx) {
            Poll::Ready(output) => self.map.take().map(|map| map(output)),
            Poll::Pending => None,
        }
    }
}

struct Tracked {
    call: CallId,
    entity: Entity,
    handle: DOHandle,
    completion: Box<dyn CallCompletion>,
}

/// Calls in flight, watched by the plugin.
#[derive(Resource, Default)]
pub(crate) struct PendingCalls {
    next: u64,
    calls: Vec<Tracked>,
}

impl PendingCalls {
    fn track(
        &mut self,
        entity: Entity,
        handle: DOHandle,
        completion: Box<dyn CallCompletion>,
    ) -> CallId {
        self.next += 1;
        let call = CallId(self.next);
        self.calls.push(Tracked {
            call,
            entity,
            handle,
            completion,
        });
        call
    }

    pub(crate) fn poll(&mut self, mut done: impl FnMut(RmcCompleted)) {
        self.calls
            .retain_mut(|t| match t.completion.poll_completion() {
                Some((outcome, value)) => {
                    done(RmcCompleted::new(
                        t.call, t.entity, t.handle, outcome, value,
                    ));
                    false
                }
                None => true,
            });
    }
}

/// Why a call from a system was not made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum NetzError {
    /// The station starts in the first frame's input stage.
    #[error("the station has not started yet")]
    NotStarted,
    /// The entity is not an object entity.
    #[error("entity {0} is not a netz object")]
    NotAnObject(Entity),
    /// The object is of another class.
    #[error("object {handle:?} is not of class `{class}`")]
    WrongClass {
        /// The object.
        handle: DOHandle,
        /// The class asked for.
        class: &'static str,
    },
    /// The station refused to send the call (see its logs).
    #[error("the call was not sent")]
    NotSent,
    /// The station refused the operation.
    #[error(transparent)]
    Station(#[from] StationError),
}

/// A call in flight: its id (as in [`RmcCompleted::call`]) and its context,
/// to poll instead of reading the message.
#[derive(Debug, Clone)]
pub struct PendingRmc<R> {
    /// The call.
    pub call: CallId,
    /// Its context: state, outcome and result.
    pub context: RmcContext<R>,
}

/// The system parameter for calls on objects: RMCs and actions on an
/// entity's object, publishing and deleting objects, and the station itself.
///
/// ```ignore
/// fn ask(mut netz: Netz, boards: Query<Entity, With<NetzRef<Board>>>) {
///     for e in &boards {
///         netz.rmc::<Board, i64>(e, |board, ctx| board.call_add_points(ctx, 5)).unwrap();
///     }
/// }
/// fn answers(mut done: MessageReader<RmcCompleted>) {
///     for d in done.read() {
///         println!("{:?} -> {:?}", d.outcome, d.value::<i64>());
///     }
/// }
/// ```
///
/// An RMC completes with an [`RmcCompleted`] message (or poll the
/// [`PendingRmc`]); a call on a local master completes in the same frame,
/// a remote one when its reply arrives.
#[derive(SystemParam)]
pub struct Netz<'w, 's> {
    station: ResMut<'w, NetzStation>,
    clock: Res<'w, NetzClock>,
    calls: ResMut<'w, PendingCalls>,
    entities: Res<'w, NetzEntities>,
    objects: Query<'w, 's, &'static NetzObject>,
}

impl Netz<'_, '_> {
    /// The station, once it started.
    pub fn station(&mut self) -> Option<&mut Station> {
        self.station.station()
    }

    /// The time of this frame.
    pub fn now(&self) -> Instant {
        self.clock.now()
    }

    /// The object of `entity`.
    pub fn handle(&self, entity: Entity) -> Result<DOHandle, NetzError> {
        self.objects
            .get(entity)
            .map(|o| o.handle)
            .map_err(|_| NetzError::NotAnObject(entity))
    }

    /// The entity of object `handle`, once it has one (an object published
    /// in this frame gets its entity at the end of the frame).
    pub fn entity(&self, handle: DOHandle) -> Option<Entity> {
        self.entities.get(handle)
    }

    fn class_handle<T: DoClass>(&mut self, entity: Entity) -> Result<DOHandle, NetzError> {
        let handle = self.handle(entity)?;
        let st = self.station.station().ok_or(NetzError::NotStarted)?;
        if st.registry().class_id::<T>() != Some(handle.class_id()) {
            return Err(NetzError::WrongClass {
                handle,
                class: T::CLASS_NAME,
            });
        }
        Ok(handle)
    }

    /// Calls an RMC on the master of `entity`'s object: `call` gets the
    /// class's typed proxy and a fresh [`RmcContext::on_master`], and makes
    /// the call with a generated `call_*` stub (`|p, ctx| p.call_add(ctx, 2)`).
    pub fn rmc<T, R>(
        &mut self,
        entity: Entity,
        call: impl for<'p> FnOnce(&mut T::Proxy<'p>, &RmcContext<R>) -> bool,
    ) -> Result<PendingRmc<R>, NetzError>
    where
        T: DoClass,
        R: DeserializeOwned + Send + Sync + 'static,
    {
        self.rmc_with::<T, R>(entity, RmcContext::on_master(), call)
    }

    /// [`Netz::rmc`] with a context of the caller's (targets, flags,
    /// sub-stream).
    pub fn rmc_with<T, R>(
        &mut self,
        entity: Entity,
        context: RmcContext<R>,
        call: impl for<'p> FnOnce(&mut T::Proxy<'p>, &RmcContext<R>) -> bool,
    ) -> Result<PendingRmc<R>, NetzError>
    where
        T: DoClass,
        R: DeserializeOwned + Send + Sync + 'static,
    {
        let handle = self.class_handle::<T>(entity)?;
        let st = self.station.station().ok_or(NetzError::NotStarted)?;
        let sent = {
            let mut proxy = st.object::<T>(handle);
            call(&mut proxy, &context)
        };
        if !sent {
            return Err(NetzError::NotSent);
        }
        let id = self.track(entity, handle, context.clone());
        Ok(PendingRmc { call: id, context })
    }

    /// Calls an action (or anything else the typed proxy offers, such as
    /// `*_on_master` / `*_on_duplicas`) on `entity`'s object; returns what
    /// `call` returned (whether it was sent).
    pub fn action<T: DoClass>(
        &mut self,
        entity: Entity,
        call: impl for<'p> FnOnce(&mut T::Proxy<'p>) -> bool,
    ) -> Result<(), NetzError> {
        let handle = self.class_handle::<T>(entity)?;
        let st = self.station.station().ok_or(NetzError::NotStarted)?;
        let mut proxy = st.object::<T>(handle);
        if call(&mut proxy) {
            Ok(())
        } else {
            Err(NetzError::NotSent)
        }
    }

    /// Watches `completion` (a call made another way, such as a typed call
    /// handle) and writes an [`RmcCompleted`] for it when it completes.
    pub fn track(
        &mut self,
        entity: Entity,
        handle: DOHandle,
        completion: impl CallCompletion,
    ) -> CallId {
        self.calls.track(entity, handle, Box::new(completion))
    }

    /// Publishes `object` as a master; its entity appears at the end of the
    /// frame (an [`ObjectDiscovered`](crate::ObjectDiscovered) message).
    pub fn publish<T: DoClass>(&mut self, object: T) -> Result<Ref<T>, NetzError> {
        let now = self.clock.now();
        let st = self.station.station().ok_or(NetzError::NotStarted)?;
        Ok(st.publish(now, object)?)
    }

    /// Deletes the master of `entity`'s object and its duplicas; the entity
    /// is despawned at the end of the frame.
    pub fn delete(&mut self, entity: Entity) -> Result<(), NetzError> {
        let handle = self.handle(entity)?;
        let now = self.clock.now();
        let st = self.station.station().ok_or(NetzError::NotStarted)?;
        Ok(st.delete_main_ref(now, handle)?)
    }

    /// Leaves the session gracefully: the other stations see a
    /// [`StationLeft`](crate::StationLeft), and this station's objects are
    /// recovered or removed per `approve_fault_recovery` (as for a failed
    /// station).
    pub fn leave(&mut self) -> Result<(), NetzError> {
        let now = self.clock.now();
        let st = self.station.station().ok_or(NetzError::NotStarted)?;
        Ok(st.leave(now)?)
    }

    /// Scales this server in (client-server sessions): its clients are told
    /// to migrate ([`MigrationEvent::Offline`](crate::MigrationEvent::Offline)),
    /// its masters move to the surviving servers, and it leaves once its
    /// clients are gone or `drain` is over.
    pub fn scale_in(&mut self, drain: std::time::Duration) -> Result<(), NetzError> {
        let now = self.clock.now();
        let st = self.station.station().ok_or(NetzError::NotStarted)?;
        Ok(st.scale_in(now, drain)?)
    }

    /// Moves this client to another server (client-server sessions), usually
    /// after [`MigrationEvent::Offline`](crate::MigrationEvent::Offline)
    /// with `ours`; reported by `MigrationEvent::Disconnected`, then
    /// `Reconnected` (or `Failed`).
    pub fn send_migrate(&mut self) -> Result<(), NetzError> {
        let now = self.clock.now();
        let st = self.station.station().ok_or(NetzError::NotStarted)?;
        Ok(st.send_migrate(now)?)
    }

    /// Moves the master of `entity`'s object to station `to`.
    pub fn migrate(&mut self, entity: Entity, to: netz_core::StationId) -> Result<(), NetzError> {
        let handle = self.handle(entity)?;
        let now = self.clock.now();
        let st = self.station.station().ok_or(NetzError::NotStarted)?;
        Ok(st.migrate(now, handle, to)?)
    }
}

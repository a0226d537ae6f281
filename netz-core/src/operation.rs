//! System operations (NetZ 14.3): what happens to objects and sessions, as
//! values that checks, callbacks and `OperationBegin`/`OperationEnd` see.

use crate::ids::StationInfo;
use crate::ids::{ClassId, DOHandle, MethodId, ProcessType, StationId};
use std::any::{Any, TypeId};
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

/// The kind of an operation (NetZ `Operation::GetType`).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
#[non_exhaustive]
pub enum OperationKind {
    /// An object enters the local store (published master or discovered duplica).
    AddToStore,
    /// An object leaves the local store.
    RemoveFromStore,
    /// A duplica is added to or removed from a master's duplica set.
    ChangeDupSet,
    /// An object's master moves to another station.
    ChangeMasterStation,
    /// The session master decides the fate of an object whose master failed.
    FaultRecovery,
    /// An RMC or action runs on the local object.
    CallMethod,
    /// A duplica's datasets are refreshed from its master.
    UpdateDataSet,
    /// A station asks to join the session (join approval).
    JoinSession,
    /// A station becomes part of the session.
    JoinStation,
    /// A station leaves the session (gracefully or after a fault).
    LeaveStation,
}

impl OperationKind {
    /// The NetZ class name of the operation kind.
    pub fn class_name(self) -> &'static str {
        match self {
            OperationKind::AddToStore => "AddToStoreOperation",
            OperationKind::RemoveFromStore => "RemoveFromStoreOperation",
            OperationKind::ChangeDupSet => "ChangeDupSetOperation",
            OperationKind::ChangeMasterStation => "ChangeMasterStationOperation",
            OperationKind::FaultRecovery => "FaultRecoveryOperation",
            OperationKind::CallMethod => "CallMethodOperation",
            OperationKind::UpdateDataSet => "UpdateDataSetOperation",
            OperationKind::JoinSession => "JoinSessionOperation",
            OperationKind::JoinStation => "JoinStationOperation",
            OperationKind::LeaveStation => "LeaveStationOperation",
        }
    }
}

/// A value user code attaches to an operation (NetZ `UserContext`).
#[derive(Clone)]
pub enum UserContext {
    /// An unsigned integer.
    U64(u64),
    /// A floating-point number.
    F64(f64),
    /// A boolean.
    Bool(bool),
    /// Any shared object.
    Object(Arc<dyn Any + Send + Sync>),
}

impl UserContext {
    /// Wraps any shared value.
    pub fn object<T: Any + Send + Sync>(value: Arc<T>) -> Self {
        UserContext::Object(value)
    }

    /// The shared object, if this context holds one of type `T`.
    pub fn downcast<T: Any + Send + Sync>(&self) -> Option<Arc<T>> {
        match self {
            UserContext::Object(o) => o.clone().downcast::<T>().ok(),
            _ => None,
        }
    }
}

impl fmt::Debug for UserContext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            UserContext::U64(v) => write!(f, "U64({v})"),
            UserContext::F64(v) => write!(f, "F64({v})"),
            UserContext::Bool(v) => write!(f, "Bool({v})"),
            UserContext::Object(_) => write!(f, "Object(..)"),
        }
    }
}

/// Why an object left the store.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
#[non_exhaustive]
pub enum RemoveReason {
    /// The master was deleted with `delete_main_ref`.
    Deleted,
    /// Fault recovery was not approved.
    FaultRecovery,
    /// The station holding the duplica left or the session ended.
    SessionLeft,
    /// The object is no longer relevant to this station (interest
    /// management).
    NotRelevant,
}

/// Publication of a master or discovery of a duplica.
#[derive(Clone, Debug)]
pub struct AddToStoreOperation {
    /// True for a master, false for a duplica.
    pub as_master: bool,
}

/// Removal of an object from the store.
#[derive(Clone, Debug)]
pub struct RemoveFromStoreOperation {
    /// Whether the removed object was the master.
    pub was_master: bool,
    /// Why it was removed.
    pub reason: RemoveReason,
}

/// A change to a master's duplica set.
#[derive(Clone, Debug)]
pub struct ChangeDupSetOperation {
    /// True when a duplica is added, false when one is removed.
    pub addition: bool,
    /// The station whose duplica is added or removed.
    pub station: StationId,
}

impl ChangeDupSetOperation {
    /// NetZ `IsADuplicaAddition`.
    pub fn is_a_duplica_addition(&self) -> bool {
        self.addition
    }
}

/// A master migration.
#[derive(Clone, Debug)]
pub struct ChangeMasterStationOperation {
    /// The previous master station.
    pub old_master: StationId,
    /// The new master station.
    pub new_master: StationId,
}

/// Fault recovery of one object on the session master.
#[derive(Clone, Debug)]
pub struct FaultRecoveryOperation {
    /// The station that failed (or left).
    pub failed_station: StationId,
    /// True when that station was declared failed, false when it left
    /// gracefully.
    pub station_failed: bool,
    /// The object's answer, once `approve_fault_recovery` ran.
    pub approved: Option<bool>,
}

/// An RMC or action running on a local object (NetZ `CallMethodOperation`).
#[derive(Clone, Debug)]
pub struct CallMethodOperation {
    pub(crate) method: MethodId,
    pub(crate) attempt: u32,
    pub(crate) user_context: Option<UserContext>,
    pub(crate) postpone: Option<Duration>,
    pub(crate) is_action: bool,
}

impl CallMethodOperation {
    /// How many times the call has been attempted, this attempt included (1 on the first).
    pub fn attempt_count(&self) -> u32 {
        self.attempt
    }

    /// The called method's id.
    pub fn target_method_id(&self) -> MethodId {
        self.method
    }

    /// Whether the call is an action rather than an RMC.
    pub fn is_action(&self) -> bool {
        self.is_action
    }

    /// Keeps `context` with the operation across postponed attempts.
    pub fn attach_user_context(&mut self, context: UserContext) {
        self.user_context = Some(context);
    }

    /// The context attached by an earlier attempt.
    pub fn user_context(&self) -> Option<&UserContext> {
        self.user_context.as_ref()
    }

    /// Runs the call again after `delay`, while other messages keep being
    /// processed. The current attempt's return value is discarded.
    pub fn postpone_operation(&mut self, delay: Duration) {
        self.postpone = Some(delay);
    }

    /// Whether `postpone_operation` was called during this attempt.
    pub fn is_postponed(&self) -> bool {
        self.postpone.is_some()
    }
}

/// A duplica refreshed from its master.
#[derive(Clone, Debug)]
pub struct UpdateDataSetOperation {
    /// The revision of the sender's datasets.
    pub revision: u8,
}

/// The decision of a join approval callback.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
#[non_exhaustive]
pub enum ApprovalState {
    /// No decision yet (the callback has not decided).
    Unknown,
    /// The decision was postponed; call `Station::decide_join` later.
    Pending,
    /// The station may join.
    Approved,
    /// The station is refused.
    Denied,
}

/// A station asking to join (NetZ `JoinSessionOperation`).
#[derive(Clone, Debug)]
pub struct JoinSessionOperation {
    pub(crate) joining: StationInfo,
    pub(crate) stations: Vec<StationInfo>,
    pub(crate) state: ApprovalState,
    pub(crate) reason: Option<String>,
}

impl JoinSessionOperation {
    /// The joining station (its id is the one it will get if approved).
    pub fn joining_station(&self) -> &StationInfo {
        &self.joining
    }

    /// The stations currently in the session.
    pub fn stations(&self) -> &[StationInfo] {
        &self.stations
    }

    /// Approves the join.
    pub fn approve(&mut self) {
        self.state = ApprovalState::Approved;
    }

    /// Denies the join; the joiner is told so.
    pub fn deny(&mut self) {
        self.state = ApprovalState::Denied;
    }

    /// Denies the join with a reason the joiner receives.
    pub fn deny_with_reason(&mut self, reason: impl Into<String>) {
        self.state = ApprovalState::Denied;
        self.reason = Some(reason.into());
    }

    /// Leaves the decision open; decide later with `Station::decide_join`.
    pub fn postpone_decision(&mut self) {
        self.state = ApprovalState::Pending;
    }

    /// The current decision (NetZ `GetApprovalState`).
    pub fn approval_state(&self) -> ApprovalState {
        self.state
    }
}

/// A station becoming part of the session.
#[derive(Clone, Debug)]
pub struct JoinStationOperation {
    /// The joining station.
    pub station: StationInfo,
}

/// A station leaving the session.
#[derive(Clone, Debug)]
pub struct LeaveStationOperation {
    /// The leaving station.
    pub station: StationId,
    /// True when it left because it was declared failed.
    pub failed: bool,
}

/// The kind-specific part of an operation.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub enum OperationDetail {
    /// See [`AddToStoreOperation`].
    AddToStore(AddToStoreOperation),
    /// See [`RemoveFromStoreOperation`].
    RemoveFromStore(RemoveFromStoreOperation),
    /// See [`ChangeDupSetOperation`].
    ChangeDupSet(ChangeDupSetOperation),
    /// See [`ChangeMasterStationOperation`].
    ChangeMasterStation(ChangeMasterStationOperation),
    /// See [`FaultRecoveryOperation`].
    FaultRecovery(FaultRecoveryOperation),
    /// See [`CallMethodOperation`].
    CallMethod(CallMethodOperation),
    /// See [`UpdateDataSetOperation`].
    UpdateDataSet(UpdateDataSetOperation),
    /// See [`JoinSessionOperation`].
    JoinSession(JoinSessionOperation),
    /// See [`JoinStationOperation`].
    JoinStation(JoinStationOperation),
    /// See [`LeaveStationOperation`].
    LeaveStation(LeaveStationOperation),
}

/// One system operation, as checks and callbacks see it.
#[derive(Clone, Debug)]
pub struct Operation {
    pub(crate) detail: OperationDetail,
    pub(crate) origin: StationId,
    pub(crate) origin_type: Option<ProcessType>,
    pub(crate) target: StationId,
    pub(crate) target_type: Option<ProcessType>,
    pub(crate) local: StationId,
    pub(crate) handle: Option<DOHandle>,
    pub(crate) class_name: Option<&'static str>,
    pub(crate) class_type: Option<TypeId>,
    pub(crate) user_data: Option<UserContext>,
    pub(crate) payload: Option<Payload>,
}

/// What an operation carries from the wire, for checks that judge it.
#[derive(Clone, Debug)]
pub(crate) enum Payload {
    /// An RMC's or action's postcard-encoded argument tuple.
    Arguments(Arc<[u8]>),
    /// A dataset message: every field (AddToStore) or the changed ones
    /// (UpdateDataSet).
    Datasets(Arc<[u8]>),
}

impl Operation {
    pub(crate) fn new(
        detail: OperationDetail,
        origin: StationId,
        target: StationId,
        local: StationId,
    ) -> Self {
        Operation {
            detail,
            origin,
            origin_type: None,
            target,
            target_type: None,
            local,
            handle: None,
            class_name: None,
            class_type: None,
            user_data: None,
            payload: None,
        }
    }

    pub(crate) fn with_arguments(mut self, args: &[u8]) -> Self {
        self.payload = Some(Payload::Arguments(args.into()));
        self
    }

    pub(crate) fn with_datasets(mut self, data: &[u8]) -> Self {
        self.payload = Some(Payload::Datasets(data.into()));
        self
    }

    /// The operation's kind (NetZ `GetType`).
    pub fn get_type(&self) -> OperationKind {
        match &self.detail {
            OperationDetail::AddToStore(_) => OperationKind::AddToStore,
            OperationDetail::RemoveFromStore(_) => OperationKind::RemoveFromStore,
            OperationDetail::ChangeDupSet(_) => OperationKind::ChangeDupSet,
            OperationDetail::ChangeMasterStation(_) => OperationKind::ChangeMasterStation,
            OperationDetail::FaultRecovery(_) => OperationKind::FaultRecovery,
            OperationDetail::CallMethod(_) => OperationKind::CallMethod,
            OperationDetail::UpdateDataSet(_) => OperationKind::UpdateDataSet,
            OperationDetail::JoinSession(_) => OperationKind::JoinSession,
            OperationDetail::JoinStation(_) => OperationKind::JoinStation,
            OperationDetail::LeaveStation(_) => OperationKind::LeaveStation,
        }
    }

    /// The operation class's name, e.g. `"ChangeMasterStationOperation"`.
    pub fn class_name(&self) -> &'static str {
        self.get_type().class_name()
    }

    /// The kind-specific part.
    pub fn detail(&self) -> &OperationDetail {
        &self.detail
    }

    /// The station that caused the operation.
    pub fn origin(&self) -> StationId {
        self.origin
    }

    /// The origin station's process type, if known.
    pub fn origin_process_type(&self) -> Option<ProcessType> {
        self.origin_type
    }

    /// The station the operation targets (for ChangeDupSet: the duplica's
    /// station; for ChangeMasterStation: the new master; otherwise the local station).
    pub fn target_station(&self) -> StationId {
        self.target
    }

    /// The target station's process type, if known.
    pub fn target_process_type(&self) -> Option<ProcessType> {
        self.target_type
    }

    /// The station running the operation.
    pub fn local_station(&self) -> StationId {
        self.local
    }

    /// The duplicated object the operation concerns, if any.
    pub fn associated_do(&self) -> Option<DOHandle> {
        self.handle
    }

    /// The class id of the associated object.
    pub fn associated_class(&self) -> Option<ClassId> {
        self.handle.map(|h| h.class_id())
    }

    /// The class name of the associated object.
    pub fn associated_class_name(&self) -> Option<&'static str> {
        self.class_name
    }

    /// Whether the associated object is of class `T` (NetZ `IsA(DOCLASSID(T))`).
    pub fn is_a<T: 'static>(&self) -> bool {
        self.class_type == Some(TypeId::of::<T>())
    }

    /// Whether the associated object is a user object (not a core object such
    /// as a station or the session).
    pub fn is_user_do(&self) -> bool {
        self.handle.is_some_and(|h| h.class_id().is_user())
    }

    /// The arguments of the RMC or action this operation runs, decoded as
    /// `A`: the tuple of the method's in and in-out arguments, in
    /// declaration order (a one-argument method's is `(T,)`, one without
    /// arguments `()`). `None` for other operations, for a call made on
    /// this station without a payload, or when the bytes are not an `A`.
    ///
    /// ```
    /// # use netz_core::{Operation, OperationKind};
    /// // A check that refuses a `shoot(target: u32, power: f32)` whose power exceeds 10.
    /// fn fair_shot(op: &Operation) -> bool {
    ///     if op.get_type() != OperationKind::CallMethod {
    ///         return true;
    ///     }
    ///     match op.arguments::<(u32, f32)>() {
    ///         Some((_target, power)) => power <= 10.0,
    ///         None => true,
    ///     }
    /// }
    /// # let _ = fair_shot;
    /// ```
    pub fn arguments<A: serde::de::DeserializeOwned>(&self) -> Option<A> {
        match &self.payload {
            Some(Payload::Arguments(bytes)) => {
                postcard::take_from_bytes::<A>(bytes).ok().map(|(a, _)| a)
            }
            _ => None,
        }
    }

    /// The raw payload the operation carries: an RMC's postcard-encoded
    /// arguments, or a dataset message. `None` when it carries none.
    pub fn payload_bytes(&self) -> Option<&[u8]> {
        match &self.payload {
            Some(Payload::Arguments(b)) | Some(Payload::Datasets(b)) => Some(b),
            None => None,
        }
    }

    /// Attaches user data to the operation (NetZ `SetUserData`).
    pub fn set_user_data(&mut self, data: UserContext) {
        self.user_data = Some(data);
    }

    /// User data attached earlier (NetZ `GetUserData`).
    pub fn user_data(&self) -> Option<&UserContext> {
        self.user_data.as_ref()
    }

    /// Safe downcast to a concrete operation (NetZ `Operation::DynamicCast`).
    pub fn downcast<T: ConcreteOperation>(&self) -> Option<&T> {
        T::dynamic_cast(self)
    }

    /// Mutable safe downcast.
    pub fn downcast_mut<T: ConcreteOperation>(&mut self) -> Option<&mut T> {
        T::dynamic_cast_mut(self)
    }
}

/// A concrete operation type reachable from [`Operation`] by a checked cast.
pub trait ConcreteOperation: Sized {
    /// The operation kind of this type.
    const KIND: OperationKind;
    /// `Some` when `op` is of this type.
    fn dynamic_cast(op: &Operation) -> Option<&Self>;
    /// `Some` when `op` is of this type.
    fn dynamic_cast_mut(op: &mut Operation) -> Option<&mut Self>;
}

macro_rules! concrete {
    ($($ty:ident => $variant:ident),* $(,)?) => {$(
        impl ConcreteOperation for $ty {
            const KIND: OperationKind = OperationKind::$variant;
            fn dynamic_cast(op: &Operation) -> Option<&Self> {
                match &op.detail {
                    OperationDetail::$variant(d) => Some(d),
                    _ => None,
                }
            }
            fn dynamic_cast_mut(op: &mut Operation) -> Option<&mut Self> {
                match &mut op.detail {
                    OperationDetail::$variant(d) => Some(d),
                    _ => None,
                }
            }
        }
    )*};
}

concrete! {
    AddToStoreOperation => AddToStore,
    RemoveFromStoreOperation => RemoveFromStore,
    ChangeDupSetOperation => ChangeDupSet,
    ChangeMasterStationOperation => ChangeMasterStation,
    FaultRecoveryOperation => FaultRecovery,
    CallMethodOperation => CallMethod,
    UpdateDataSetOperation => UpdateDataSet,
    JoinSessionOperation => JoinSession,
    JoinStationOperation => JoinStation,
    LeaveStationOperation => LeaveStation,
}

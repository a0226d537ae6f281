//! The object model: the traits a DO class implements (what `#[doclass]` and
//! `#[dataset]` generate), references, the class registry and the proxies
//! through which RMCs and actions are called.

use crate::ids::{DOHandle, MethodId, StationId};
use crate::operation::{CallMethodOperation, Operation, OperationDetail};
use crate::rmc::{RmcContext, RmcShared};
use crate::Instant;
use serde::Serialize;
use std::any::{Any, TypeId};
use std::marker::PhantomData;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

/// The maximum number of fields in one dataset.
pub const MAX_DATASET_FIELDS: usize = 64;
/// The maximum number of RMCs and actions in one class.
pub const MAX_METHODS: usize = 255;

/// Why a dataset field or RMC argument could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cannot decode {what}")]
pub struct DecodeError {
    /// What was being decoded.
    pub what: &'static str,
}

/// How the updates of a dataset travel from its master to the duplicas.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Delivery {
    /// Every update arrives, in order, on the link's reliable system
    /// sub-stream (a lost one is sent again and holds back those after it).
    /// The default.
    #[default]
    Reliable,
    /// Latest state: updates travel on the link's unreliable channel and
    /// carry the fields changed since the state the receiver is known to
    /// hold; a lost update is never sent again (the next one carries the
    /// newer state), and a duplica applies only states newer than the one
    /// it has. For positions and other state that a newer value replaces.
    Latest,
}

/// A replicated dataset (NetZ `DataSet`): fields with ids in declaration
/// order, each with the revision from which it is valid (VER-3).
///
/// Fields are encoded one by one (postcard); a receiver that knows fewer
/// fields ignores the trailing ones, and one that knows more leaves the
/// fields beyond the sender's revision untouched.
pub trait DataSet: Send + 'static {
    /// The dataset's name.
    fn name(&self) -> &'static str;
    /// Field names in declaration order.
    fn field_names(&self) -> &'static [&'static str];
    /// The revision from which each field is valid, in declaration order
    /// (0 before the first `revision` marker); never decreasing.
    fn field_revisions(&self) -> &'static [u8];
    /// The dataset revision of this build: the highest marker, 0 without one.
    fn declared_revision(&self) -> u8 {
        self.field_revisions().last().copied().unwrap_or(0)
    }
    /// Appends field `index`'s encoding to `out`.
    fn encode_field(&self, index: usize, out: &mut Vec<u8>);
    /// Decodes field `index` from the front of `input`, advancing it.
    fn decode_field(&mut self, index: usize, input: &mut &[u8]) -> Result<(), DecodeError>;
    /// The revision of the last received update (the declared revision on a master).
    fn received_revision(&self) -> u8;
    /// Records the revision of a received update.
    fn set_received_revision(&mut self, revision: u8);
    /// How this dataset's updates travel ([`Delivery::Reliable`] unless
    /// overridden; `#[dataset(latest)]` makes it [`Delivery::Latest`]).
    /// Every object of a class must answer the same.
    fn delivery(&self) -> Delivery {
        Delivery::Reliable
    }
    /// The width in bits of a quantized field (see [`encode_quantized`]),
    /// `None` (the default) for a field encoded with postcard. A quantized
    /// field's [`DataSet::encode_field`] writes its quantized value as
    /// `ceil(bits / 8)` little-endian bytes; updates pack consecutive
    /// quantized fields bit by bit.
    fn field_bits(&self, _index: usize) -> Option<u8> {
        None
    }
    /// Called at the start of every operation on the owning object.
    fn operation_begin(&mut self, _op: &Operation) {}
    /// Called at the end of every operation on the owning object.
    fn operation_end(&mut self, _op: &Operation) {}

    /// NetZ `DataSet::GetRevision`: the revision of the received dataset.
    fn revision(&self) -> u8 {
        self.received_revision()
    }
    /// NetZ `DATASET_VALID_REVISION(field)`.
    fn valid_revision(&self, field: &str) -> Option<u8> {
        let i = self.field_names().iter().position(|n| *n == field)?;
        self.field_revisions().get(i).copied()
    }
    /// NetZ `DATASET_ISVALID(field)`: the field exists in the received revision.
    fn is_valid(&self, field: &str) -> bool {
        self.valid_revision(field)
            .is_some_and(|r| r <= self.received_revision())
    }
}

/// Encodes one value the way datasets and RMCs do (postcard).
pub fn encode_value<T: Serialize + ?Sized>(value: &T, out: &mut Vec<u8>) {
    // Serializing into a Vec cannot fail for serde-derived types; a custom
    // Serialize that errors leaves the output unchanged.
    if let Ok(v) = postcard::to_extend(value, std::mem::take(out)) {
        *out = v;
    }
}

/// Decodes one value from the front of `input`, advancing it.
pub fn decode_value<T: serde::de::DeserializeOwned>(
    input: &mut &[u8],
    what: &'static str,
) -> Result<T, DecodeError> {
    let (v, rest) = postcard::take_from_bytes::<T>(input).map_err(|_| DecodeError { what })?;
    *input = rest;
    Ok(v)
}

/// The widest quantized field, in bits.
pub const MAX_QUANTIZED_BITS: u8 = 32;

/// The quantized value of `value` in `[min, max]` on `bits` bits (1 to
/// [`MAX_QUANTIZED_BITS`]): the nearest of `2^bits` evenly spaced steps,
/// `min` and `max` included; values outside the range are clamped and NaN
/// reads as `min`.
pub fn quantize(value: f64, min: f64, max: f64, bits: u8) -> u64 {
    let bits = bits.clamp(1, MAX_QUANTIZED_BITS);
    let steps = ((1u64 << bits) - 1) as f64;
    if max.partial_cmp(&min) != Some(std::cmp::Ordering::Greater) || value.is_nan() {
        return 0;
    }
    let t = ((value - min) / (max - min)).clamp(0.0, 1.0);
    (t * steps).round() as u64
}

/// The value a quantized `q` stands for (see [`quantize`]).
pub fn dequantize(q: u64, min: f64, max: f64, bits: u8) -> f64 {
    let bits = bits.clamp(1, MAX_QUANTIZED_BITS);
    let steps = ((1u64 << bits) - 1) as f64;
    let q = q.min((1u64 << bits) - 1) as f64;
    if max.partial_cmp(&min) != Some(std::cmp::Ordering::Greater) {
        return min;
    }
    min + (max - min) * (q / steps)
}

/// Encodes a quantized field the way [`DataSet::field_bits`] says: its
/// [`quantize`]d value as `ceil(bits / 8)` little-endian bytes.
pub fn encode_quantized(value: f64, min: f64, max: f64, bits: u8, out: &mut Vec<u8>) {
    let q = quantize(value, min, max, bits);
    let n = usize::from(bits.clamp(1, MAX_QUANTIZED_BITS)).div_ceil(8);
    out.extend_from_slice(&q.to_le_bytes()[..n]);
}

/// Decodes a field written by [`encode_quantized`] from the front of
/// `input`, advancing it.
pub fn decode_quantized(
    input: &mut &[u8],
    min: f64,
    max: f64,
    bits: u8,
    what: &'static str,
) -> Result<f64, DecodeError> {
    let n = usize::from(bits.clamp(1, MAX_QUANTIZED_BITS)).div_ceil(8);
    if input.len() < n {
        return Err(DecodeError { what });
    }
    let (head, rest) = input.split_at(n);
    let mut le = [0u8; 8];
    le[..n].copy_from_slice(head);
    *input = rest;
    Ok(dequantize(u64::from_le_bytes(le), min, max, bits))
}

/// How an object's master station went away (see
/// [`DoClass::approve_recovery`]).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
#[non_exhaustive]
pub enum MasterLoss {
    /// The station was declared failed (silent too long, or cut off).
    Failed,
    /// The station left the session gracefully (`Station::leave`).
    Left,
}

/// An RMC or an action.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum MethodKind {
    /// A remote method call (may return a value).
    Rmc,
    /// An action (no return value; runs on master and duplicas).
    Action,
}

/// What a class declares about one of its methods; the index in
/// [`DoClass::METHODS`] is the method id.
#[derive(Clone, Copy, Debug)]
pub struct MethodInfo {
    /// The method's name.
    pub name: &'static str,
    /// RMC or action.
    pub kind: MethodKind,
}

/// Why a method could not be dispatched.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DispatchError {
    /// The class has no method with this id.
    #[error("unknown method id {0:?}")]
    UnknownMethod(MethodId),
    /// The arguments did not decode.
    #[error("cannot decode the arguments")]
    BadArguments,
}

/// A duplicated-object class (what `#[doclass]` generates).
pub trait DoClass: Send + Sized + 'static {
    /// The class name.
    const CLASS_NAME: &'static str;
    /// An explicit class id (100..=255), or `None` for the next free one.
    const CLASS_ID: Option<u8> = None;
    /// RMCs and actions in declaration order; the index is the method id.
    const METHODS: &'static [MethodInfo] = &[];
    /// The typed proxy carrying the generated `call_*` / `*_on_master` /
    /// `*_on_duplicas` stubs; hand-written classes use [`ObjectProxy`].
    type Proxy<'a>: From<ObjectProxy<'a, Self>>;

    /// Creates a duplica (or well-known object) before its datasets arrive.
    fn new_duplica() -> Self;
    /// How many datasets the class has.
    fn dataset_count(&self) -> usize {
        0
    }
    /// Dataset `index`.
    fn dataset(&self, _index: usize) -> Option<&dyn DataSet> {
        None
    }
    /// Dataset `index`, mutably.
    fn dataset_mut(&mut self, _index: usize) -> Option<&mut dyn DataSet> {
        None
    }
    /// NetZ `DuplicatedObject::OperationBegin`.
    fn operation_begin(&mut self, _op: &Operation) {}
    /// NetZ `DuplicatedObject::OperationEnd`.
    fn operation_end(&mut self, _op: &Operation) {}
    /// NetZ `InitDO`: the object enters the store.
    fn init_do(&mut self) {}
    /// Asked on the session master when this object's master station failed:
    /// true takes the master over, false removes the object (default).
    fn approve_fault_recovery(&mut self) -> bool {
        false
    }
    /// Asked on the session master when this object's master station is
    /// gone, saying whether it failed or left gracefully: true takes the
    /// master over, false removes the object.
    ///
    /// The default asks [`DoClass::approve_fault_recovery`] in both cases.
    /// NetZ removes the masters of a station that leaves (14.3.1.10):
    /// return false for [`MasterLoss::Left`] to do the same.
    ///
    /// ```
    /// # use netz_core::{DoClass, MasterLoss, ObjectProxy};
    /// struct Bullet;
    /// impl DoClass for Bullet {
    ///     const CLASS_NAME: &'static str = "Bullet";
    ///     type Proxy<'a> = ObjectProxy<'a, Self>;
    ///     fn new_duplica() -> Self {
    ///         Bullet
    ///     }
    ///     // Kept when its station crashes, gone with a station that leaves.
    ///     fn approve_recovery(&mut self, loss: MasterLoss) -> bool {
    ///         loss == MasterLoss::Failed
    ///     }
    /// }
    /// ```
    fn approve_recovery(&mut self, loss: MasterLoss) -> bool {
        let _ = loss;
        self.approve_fault_recovery()
    }
    /// Runs method `method` with postcard-encoded `args`; returns the
    /// postcard-encoded result.
    fn dispatch(
        &mut self,
        _call: &mut CallContext<'_>,
        method: MethodId,
        _args: &[u8],
    ) -> Result<Vec<u8>, DispatchError> {
        Err(DispatchError::UnknownMethod(method))
    }
}

/// The object-safe face of a DO class, used by the station.
pub(crate) trait DoDyn {
    fn dataset_count(&self) -> usize;
    fn dataset(&self, i: usize) -> Option<&dyn DataSet>;
    fn dataset_mut(&mut self, i: usize) -> Option<&mut dyn DataSet>;
    fn operation_begin(&mut self, op: &Operation);
    fn operation_end(&mut self, op: &Operation);
    fn init_do(&mut self);
    fn approve_recovery(&mut self, loss: MasterLoss) -> bool;
    fn dispatch(
        &mut self,
        call: &mut CallContext<'_>,
        method: MethodId,
        args: &[u8],
    ) -> Result<Vec<u8>, DispatchError>;
}

impl<T: DoClass> DoDyn for T {
    fn dataset_count(&self) -> usize {
        DoClass::dataset_count(self)
    }
    fn dataset(&self, i: usize) -> Option<&dyn DataSet> {
        DoClass::dataset(self, i)
    }
    fn dataset_mut(&mut self, i: usize) -> Option<&mut dyn DataSet> {
        DoClass::dataset_mut(self, i)
    }
    fn operation_begin(&mut self, op: &Operation) {
        DoClass::operation_begin(self, op)
    }
    fn operation_end(&mut self, op: &Operation) {
        DoClass::operation_end(self, op)
    }
    fn init_do(&mut self) {
        DoClass::init_do(self)
    }
    fn approve_recovery(&mut self, loss: MasterLoss) -> bool {
        DoClass::approve_recovery(self, loss)
    }
    fn dispatch(
        &mut self,
        call: &mut CallContext<'_>,
        method: MethodId,
        args: &[u8],
    ) -> Result<Vec<u8>, DispatchError> {
        DoClass::dispatch(self, call, method, args)
    }
}

/// Per-object facts shared by the store and every [`Ref`].
#[derive(Debug)]
pub(crate) struct CellMeta {
    pub(crate) handle: DOHandle,
    pub(crate) local: StationId,
    pub(crate) master: AtomicU32,
    pub(crate) in_store: std::sync::atomic::AtomicBool,
}

pub(crate) trait ErasedCell: Send + Sync {
    fn with_dyn(&self, f: &mut dyn FnMut(&mut dyn DoDyn));
    fn into_any(self: Arc<Self>) -> Arc<dyn Any + Send + Sync>;
    fn meta(&self) -> &CellMeta;
}

/// The shared cell holding one object.
pub struct ObjCell<T> {
    meta: CellMeta,
    obj: Mutex<T>,
}

impl<T: DoClass> ErasedCell for ObjCell<T> {
    fn with_dyn(&self, f: &mut dyn FnMut(&mut dyn DoDyn)) {
        let mut g = self.obj.lock().unwrap_or_else(|e| e.into_inner());
        f(&mut *g)
    }
    fn into_any(self: Arc<Self>) -> Arc<dyn Any + Send + Sync> {
        self
    }
    fn meta(&self) -> &CellMeta {
        &self.meta
    }
}

pub(crate) fn new_cell<T: DoClass>(
    obj: T,
    handle: DOHandle,
    local: StationId,
    master: StationId,
) -> Arc<dyn ErasedCell> {
    Arc::new(ObjCell {
        meta: CellMeta {
            handle,
            local,
            master: AtomicU32::new(master.0),
            in_store: std::sync::atomic::AtomicBool::new(false),
        },
        obj: Mutex::new(obj),
    })
}

/// A reference to a local object (NetZ `RefTemplate`). It keeps the object
/// alive: its destructor runs once the store removed it and the last
/// reference is dropped (DO-7).
pub struct Ref<T> {
    cell: Arc<ObjCell<T>>,
}

impl<T> Clone for Ref<T> {
    fn clone(&self) -> Self {
        Ref {
            cell: self.cell.clone(),
        }
    }
}

impl<T: DoClass> Ref<T> {
    pub(crate) fn from_erased(cell: Arc<dyn ErasedCell>) -> Option<Self> {
        cell.into_any()
            .downcast::<ObjCell<T>>()
            .ok()
            .map(|cell| Ref { cell })
    }

    /// The object's handle.
    pub fn handle(&self) -> DOHandle {
        self.cell.meta.handle
    }

    /// The station holding the master.
    pub fn master_station(&self) -> StationId {
        StationId(self.cell.meta.master.load(Ordering::Acquire))
    }

    /// Whether the local copy is the master (NetZ `IsADuplicationMaster`).
    pub fn is_master(&self) -> bool {
        self.master_station() == self.cell.meta.local
    }

    /// Whether the local copy is a duplica (NetZ `IsADuplica`).
    pub fn is_duplica(&self) -> bool {
        !self.is_master()
    }

    /// Whether the object is still in the local store (NetZ `IsValid`).
    pub fn is_valid(&self) -> bool {
        self.cell.meta.in_store.load(Ordering::Acquire)
    }

    /// Locks the object for direct access (local calls are plain Rust calls).
    pub fn lock(&self) -> MutexGuard<'_, T> {
        self.cell.obj.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Runs `f` on the locked object.
    pub fn with<R>(&self, f: impl FnOnce(&mut T) -> R) -> R {
        f(&mut self.lock())
    }
}

impl<T> std::fmt::Debug for Ref<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Ref({:?})", self.cell.meta.handle)
    }
}

/// Where an action runs.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum ActionTarget {
    /// On the master, which then runs it on every duplica (`<name>_on_master`).
    Master,
    /// On every duplica (`<name>_on_duplicas`; call it on the master).
    Duplicas,
}

/// What a proxy needs from a station: sending RMCs and actions. The
/// station implements it; a running RMC's [`CallContext`] reaches the
/// station through it.
pub trait Invoker {
    /// Sends an RMC; returns whether it was sent.
    fn invoke_rmc(
        &mut self,
        handle: DOHandle,
        method: MethodId,
        args: Vec<u8>,
        ctx: &Arc<RmcShared>,
        returns: bool,
    ) -> bool;
    /// Sends an action; returns whether it was sent.
    fn invoke_action(
        &mut self,
        handle: DOHandle,
        method: MethodId,
        args: Vec<u8>,
        target: ActionTarget,
    ) -> bool;
    /// The local station's id.
    fn local_station(&self) -> StationId;
    /// Read access to the local store, for [`CallContext::get`] and
    /// [`CallContext::select`]; `None` (the default) when the invoker has
    /// no store.
    fn store_view(&self) -> Option<StoreView<'_>> {
        None
    }
}

/// A handle bound to an invoker: the base of every generated proxy.
pub struct ObjectProxy<'a, T> {
    invoker: &'a mut dyn Invoker,
    handle: DOHandle,
    _class: PhantomData<fn() -> T>,
}

impl<'a, T: DoClass> ObjectProxy<'a, T> {
    /// Binds `handle` to `invoker`.
    pub fn new(invoker: &'a mut dyn Invoker, handle: DOHandle) -> Self {
        ObjectProxy {
            invoker,
            handle,
            _class: PhantomData,
        }
    }

    /// The target object's handle.
    pub fn handle(&self) -> DOHandle {
        self.handle
    }

    /// Calls RMC `method` with `args` (a tuple of the in and in-out
    /// arguments); returns whether the call was sent.
    pub fn call<A: Serialize, R: 'static>(
        &mut self,
        ctx: &RmcContext<R>,
        method: MethodId,
        args: &A,
    ) -> bool {
        let Ok(bytes) = postcard::to_allocvec(args) else {
            return false;
        };
        let returns = TypeId::of::<R>() != TypeId::of::<()>();
        self.invoker
            .invoke_rmc(self.handle, method, bytes, ctx.shared(), returns)
    }

    /// Runs action `method` on the master, then on every duplica.
    pub fn action_on_master<A: Serialize>(&mut self, method: MethodId, args: &A) -> bool {
        let Ok(bytes) = postcard::to_allocvec(args) else {
            return false;
        };
        self.invoker
            .invoke_action(self.handle, method, bytes, ActionTarget::Master)
    }

    /// Runs action `method` on every duplica (call it on the master).
    pub fn action_on_duplicas<A: Serialize>(&mut self, method: MethodId, args: &A) -> bool {
        let Ok(bytes) = postcard::to_allocvec(args) else {
            return false;
        };
        self.invoker
            .invoke_action(self.handle, method, bytes, ActionTarget::Duplicas)
    }
}

/// The context of a method running on a local object: the current
/// [`CallMethodOperation`], and a way to call other objects (nested RMCs).
pub struct CallContext<'a> {
    pub(crate) invoker: &'a mut dyn Invoker,
    pub(crate) op: &'a mut Operation,
    pub(crate) handle: DOHandle,
    pub(crate) now: Instant,
}

impl<'a> CallContext<'a> {
    /// The current operation (NetZ `GetCurrentOperation`).
    pub fn current_operation(&mut self) -> &mut Operation {
        self.op
    }

    /// The current call operation (attempt count, method id, user context, postpone).
    pub fn operation(&mut self) -> &mut CallMethodOperation {
        match &mut self.op.detail {
            OperationDetail::CallMethod(c) => c,
            _ => unreachable!("a call context always carries a CallMethod operation"),
        }
    }

    /// The station that made the call.
    pub fn caller(&self) -> StationId {
        self.op.origin()
    }

    /// The local station.
    pub fn local_station(&self) -> StationId {
        self.invoker.local_station()
    }

    /// The called object's handle.
    pub fn handle(&self) -> DOHandle {
        self.handle
    }

    /// The station's current time.
    pub fn now(&self) -> Instant {
        self.now
    }

    /// A proxy to call methods of another (or this) object.
    pub fn object<T: DoClass>(&mut self, handle: DOHandle) -> T::Proxy<'_> {
        T::Proxy::from(ObjectProxy::new(&mut *self.invoker, handle))
    }

    /// Another local object (master or duplica) of class `T`, to read (or,
    /// on its master, to change: datasets reach the duplicas with the next
    /// update). `None` when it is not in the store, is of another class, or
    /// is the called object itself (that one is `self`) or a caller of a
    /// nested call: those are locked by the running call.
    ///
    /// Lock the returned [`Ref`] briefly and do not keep it locked across a
    /// nested call to that object.
    ///
    /// ```
    /// # use netz_core::{CallContext, DoClass, DOHandle, ObjectProxy};
    /// # struct Player { x: f32, y: f32 }
    /// # impl DoClass for Player {
    /// #     const CLASS_NAME: &'static str = "Player";
    /// #     type Proxy<'a> = ObjectProxy<'a, Self>;
    /// #     fn new_duplica() -> Self { Player { x: 0.0, y: 0.0 } }
    /// # }
    /// // Inside an Arena RMC: how far apart two players are.
    /// fn distance(ctx: &CallContext<'_>, a: DOHandle, b: DOHandle) -> Option<f32> {
    ///     let (a, b) = (ctx.get::<Player>(a)?, ctx.get::<Player>(b)?);
    ///     let (ax, ay) = a.with(|p| (p.x, p.y));
    ///     let (bx, by) = b.with(|p| (p.x, p.y));
    ///     Some(((ax - bx).powi(2) + (ay - by).powi(2)).sqrt())
    /// }
    /// # let _ = distance;
    /// ```
    pub fn get<T: DoClass>(&self, handle: DOHandle) -> Option<Ref<T>> {
        self.invoker.store_view()?.get(handle)
    }

    /// Every other local object of class `T` (masters and duplicas), by
    /// handle; the called object and callers of a nested call are left out
    /// (see [`CallContext::get`]).
    pub fn select<T: DoClass>(&self) -> Vec<Ref<T>> {
        self.invoker
            .store_view()
            .map(|v| v.select())
            .unwrap_or_default()
    }

    /// The station holding the master of `handle`, if it is in the store.
    pub fn master_of(&self, handle: DOHandle) -> Option<StationId> {
        self.invoker.store_view()?.master_of(handle)
    }
}

/// What the station's store offers a [`StoreView`].
pub(crate) trait StoreAccess {
    /// The cell and master of `handle`.
    fn entry(&self, handle: DOHandle) -> Option<(Arc<dyn ErasedCell>, StationId)>;
    /// The cells of every object of the Rust type `class`, by handle.
    fn of_type(&self, class: TypeId) -> Vec<(DOHandle, Arc<dyn ErasedCell>)>;
}

/// Read access to the local store, for operation checks
/// ([`crate::Station::register_operation_check`]) and running methods
/// ([`crate::CallContext::get`]).
///
/// Objects whose method is running right now (the called object and, in a
/// nested call, its callers) are left out: they are locked by that call,
/// and the running method reaches its own object as `self`.
///
/// ```
/// # use netz_core::pipeline::StoreView;
/// # use netz_core::{DoClass, ObjectProxy, DOHandle};
/// # struct Player { name: String }
/// # impl DoClass for Player {
/// #     const CLASS_NAME: &'static str = "Player";
/// #     type Proxy<'a> = ObjectProxy<'a, Self>;
/// #     fn new_duplica() -> Self { Player { name: String::new() } }
/// # }
/// // Whether a Player other than `except` already has `name`.
/// fn name_taken(store: &StoreView<'_>, name: &str, except: DOHandle) -> bool {
///     store
///         .select::<Player>()
///         .iter()
///         .any(|p| p.handle() != except && p.lock().name == name)
/// }
/// # let _ = name_taken;
/// ```
pub struct StoreView<'a> {
    store: &'a dyn StoreAccess,
    busy: &'a [DOHandle],
}

impl<'a> StoreView<'a> {
    pub(crate) fn new(store: &'a dyn StoreAccess, busy: &'a [DOHandle]) -> Self {
        StoreView { store, busy }
    }

    /// The local object `handle` (master or duplica), if it is in the store
    /// and of class `T`.
    pub fn get<T: DoClass>(&self, handle: DOHandle) -> Option<Ref<T>> {
        if self.busy.contains(&handle) {
            return None;
        }
        let (cell, _) = self.store.entry(handle)?;
        Ref::from_erased(cell)
    }

    /// Every local object of class `T` (masters and duplicas), by handle.
    pub fn select<T: DoClass>(&self) -> Vec<Ref<T>> {
        let mut v = self.store.of_type(TypeId::of::<T>());
        v.sort_by_key(|(h, _)| *h);
        v.into_iter()
            .filter(|(h, _)| !self.busy.contains(h))
            .filter_map(|(_, c)| Ref::from_erased(c))
            .collect()
    }

    /// The station holding the master of `handle`, if it is in the store
    /// (objects of a running method included).
    pub fn master_of(&self, handle: DOHandle) -> Option<StationId> {
        self.store.entry(handle).map(|(_, m)| m)
    }

    /// Whether `handle` is in the local store.
    pub fn contains(&self, handle: DOHandle) -> bool {
        self.store.entry(handle).is_some()
    }
}

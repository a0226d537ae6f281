//! Objects as entities: the components every object entity carries, the
//! classes Bevy knows, and the systems that keep dataset components and
//! objects equal.

use crate::station::{NetzStation, PendingUpdates, TouchedObjects};
use bevy_ecs::change_detection::DetectChangesMut;
use bevy_ecs::component::{Component, Mutable};
use bevy_ecs::entity::Entity;
use bevy_ecs::query::Changed;
use bevy_ecs::resource::Resource;
use bevy_ecs::system::{Commands, EntityCommands, Local, Query, Res, ResMut};
use netz_core::{ClassId, DOHandle, DataSet, DoClass, Ref, Station, StationId};
use std::collections::HashMap;
use std::marker::PhantomData;

/// Whether the local copy of an object is its master or a duplica.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Role {
    /// The local copy is the master: its dataset components are the
    /// object's state, and changing them updates the duplicas.
    Master,
    /// The local copy is a duplica: its dataset components follow the
    /// master's updates.
    Duplica,
}

/// The component of every object entity: which object it is and whether the
/// local copy is its master.
///
/// The plugin spawns and despawns object entities; despawning one by hand
/// does not delete the object (use [`Netz::delete`](crate::Netz::delete) on
/// a master).
#[derive(Component, Clone, Copy, Debug, PartialEq, Eq)]
pub struct NetzObject {
    /// The object's handle.
    pub handle: DOHandle,
    /// Master or duplica here.
    pub role: Role,
    /// The station holding the master.
    pub master: StationId,
}

impl NetzObject {
    /// Whether the local copy is the master.
    pub fn is_master(&self) -> bool {
        self.role == Role::Master
    }
}

/// The object itself (a reference into the station's store), on the entities
/// of classes registered with [`NetzAppExt::register_netz_class`].
///
/// Read the object with `.0.lock()`. To change it directly (rather than
/// through its dataset components, the usual way), use [`NetzRef::write`]
/// on a `Mut<NetzRef<T>>`: that marks the component changed, and the
/// plugin brings the dataset components (and, on a master, the duplicas)
/// in line in the next frame.
#[derive(Component)]
pub struct NetzRef<T: DoClass>(pub Ref<T>);

impl<T: DoClass> NetzRef<T> {
    /// Locks the object for a change the plugin will see (through Bevy's
    /// change detection on this component).
    pub fn write(&mut self) -> std::sync::MutexGuard<'_, T> {
        self.0.lock()
    }
}

/// Where each object's entity is.
#[derive(Resource, Default, Debug)]
pub struct NetzEntities {
    pub(crate) by_handle: HashMap<DOHandle, Entity>,
}

impl NetzEntities {
    /// The entity of object `handle`.
    pub fn get(&self, handle: DOHandle) -> Option<Entity> {
        self.by_handle.get(&handle).copied()
    }

    /// How many objects have an entity.
    pub fn len(&self) -> usize {
        self.by_handle.len()
    }

    /// Whether no object has an entity.
    pub fn is_empty(&self) -> bool {
        self.by_handle.is_empty()
    }
}

/// A dataset that is also a Bevy component: what a class's
/// [`NetzClass::Datasets`] lists. Implemented for every `#[dataset]` struct
/// that derives `Component` and `Default`.
pub trait DatasetComponent: DataSet + Component<Mutability = Mutable> + Default + Sync {}

impl<D: DataSet + Component<Mutability = Mutable> + Default + Sync> DatasetComponent for D {}

/// A DO class whose objects become entities, with the datasets that become
/// components.
///
/// ```ignore
/// impl NetzClass for Player {
///     type Datasets = (Position, Health);
/// }
/// app.register_netz_class::<Player>();
/// ```
pub trait NetzClass: DoClass + Sync {
    /// The dataset types of the class that are components of its entities:
    /// a tuple of up to eight [`DatasetComponent`]s (`()` for none), each
    /// type once (an entity holds one component of a type); a type the
    /// class holds twice stands for its first dataset of that type.
    type Datasets: DatasetComponents;
}

/// A tuple of [`DatasetComponent`]s (see [`NetzClass::Datasets`]).
pub trait DatasetComponents: Send + Sync + 'static {
    #[doc(hidden)]
    fn add_systems<T: NetzClass>(app: &mut bevy_app::App);
    #[doc(hidden)]
    fn insert<T: NetzClass>(object: &T, entity: &mut EntityCommands<'_>);
}

macro_rules! tuple_components {
    ($($d:ident),*) => {
        impl<$($d: DatasetComponent),*> DatasetComponents for ($($d,)*) {
            #[allow(unused_variables, unused_mut)]
            fn add_systems<T: NetzClass>(app: &mut bevy_app::App) {
                let mut seen = Vec::<std::any::TypeId>::new();
                $(
                    assert!(
                        !seen.contains(&std::any::TypeId::of::<$d>()),
                        "class `{}`: dataset `{}` is listed twice in NetzClass::Datasets",
                        T::CLASS_NAME,
                        std::any::type_name::<$d>(),
                    );
                    seen.push(std::any::TypeId::of::<$d>());
                    add_dataset_systems::<T, $d>(app);
                )*
            }
            #[allow(unused_variables, unused_mut)]
            fn insert<T: NetzClass>(object: &T, entity: &mut EntityCommands<'_>) {
                let mut taken = Vec::<usize>::new();
                $( insert_dataset::<T, $d>(object, entity, &mut taken); )*
            }
        }
    };
}

tuple_components!();
tuple_components!(A);
tuple_components!(A, B);
tuple_components!(A, B, C);
tuple_components!(A, B, C, D);
tuple_components!(A, B, C, D, E);
tuple_components!(A, B, C, D, E, F);
tuple_components!(A, B, C, D, E, F, G);
tuple_components!(A, B, C, D, E, F, G, H);

/// Ties a dataset component to its dataset in the object, with the encoding
/// of each field as last synchronised (so only fields that really changed
/// are copied, and change detection fires only for them).
#[derive(Component)]
pub struct DatasetLink<D> {
    index: usize,
    last: Vec<Vec<u8>>,
    _dataset: PhantomData<fn() -> D>,
}

fn encode_fields(ds: &dyn DataSet) -> Vec<Vec<u8>> {
    (0..ds.field_names().len())
        .map(|i| {
            let mut out = Vec::new();
            ds.encode_field(i, &mut out);
            out
        })
        .collect()
}

fn decode_field(ds: &mut dyn DataSet, index: usize, bytes: &[u8]) {
    let mut input = bytes;
    if let Err(e) = ds.decode_field(index, &mut input) {
        // Both sides are the same type in the same build: cannot happen
        // unless a custom `DataSet` encodes asymmetrically.
        tracing::warn!(dataset = ds.name(), field = index, error = %e, "field did not decode");
    }
}

fn insert_dataset<T: NetzClass, D: DatasetComponent>(
    object: &T,
    entity: &mut EntityCommands<'_>,
    taken: &mut Vec<usize>,
) {
    let mut component = D::default();
    let name = component.name();
    let Some(index) = (0..object.dataset_count())
        .find(|i| !taken.contains(i) && object.dataset(*i).is_some_and(|ds| ds.name() == name))
    else {
        tracing::warn!(
            class = T::CLASS_NAME,
            dataset = name,
            "the class has no (further) dataset of this type; no component"
        );
        return;
    };
    taken.push(index);
    let Some(ds) = object.dataset(index) else {
        return;
    };
    let last = encode_fields(ds);
    for (i, bytes) in last.iter().enumerate() {
        decode_field(&mut component, i, bytes);
    }
    component.set_received_revision(ds.received_revision());
    entity.insert((
        component,
        DatasetLink::<D> {
            index,
            last,
            _dataset: PhantomData,
        },
    ));
}

/// The plugin's systems that carry one dataset type of one class.
fn add_dataset_systems<T: NetzClass, D: DatasetComponent>(app: &mut bevy_app::App) {
    use bevy_ecs::schedule::IntoScheduleConfigs;
    app.add_systems(
        bevy_app::PreUpdate,
        object_to_component::<T, D>.in_set(crate::NetzSet::SyncIn),
    );
    app.add_systems(
        bevy_app::PostUpdate,
        component_to_object::<T, D>.in_set(crate::NetzSet::SyncOut),
    );
}

/// The fields of `ds` whose encoding differs from `last`, with their new
/// encoding; allocates only for those (`scratch` is reused).
fn changed_fields(
    ds: &dyn DataSet,
    last: &[Vec<u8>],
    scratch: &mut Vec<u8>,
) -> Vec<(usize, Vec<u8>)> {
    let mut changed = Vec::new();
    for i in 0..ds.field_names().len() {
        scratch.clear();
        ds.encode_field(i, scratch);
        if last.get(i).map(Vec::as_slice) != Some(scratch.as_slice()) {
            changed.push((i, scratch.clone()));
        }
    }
    changed
}

/// Sets `last[i]` for every changed field.
fn remember(last: &mut Vec<Vec<u8>>, changed: Vec<(usize, Vec<u8>)>) {
    for (i, bytes) in changed {
        if last.len() <= i {
            last.resize(i + 1, Vec::new());
        }
        last[i] = bytes;
    }
}

/// Object -> component, for masters and duplicas alike, for the objects an
/// operation touched ([`TouchedObjects`]) or the game wrote through
/// [`NetzRef::write`]: the fields whose object value changed since the last
/// synchronisation are copied into the component, and only if the component
/// does not hold that value already, so change detection fires exactly when
/// the value changed. A master whose object changed this way is marked for
/// update.
#[allow(clippy::type_complexity)]
fn object_to_component<T: NetzClass, D: DatasetComponent>(
    touched: Res<TouchedObjects>,
    written: Query<Entity, Changed<NetzRef<T>>>,
    mut q: Query<(&NetzObject, &NetzRef<T>, &mut D, &mut DatasetLink<D>)>,
    mut pending: ResMut<PendingUpdates>,
    mut scratch: Local<Vec<u8>>,
) {
    for entity in touched.0.iter().copied().chain(written.iter()) {
        let Ok((obj, r, mut component, mut link)) = q.get_mut(entity) else {
            continue;
        };
        let link = link.bypass_change_detection();
        let (changed, revision) = {
            let guard = r.0.lock();
            let Some(ds) = guard.dataset(link.index) else {
                continue;
            };
            (
                changed_fields(ds, &link.last, &mut scratch),
                ds.received_revision(),
            )
        };
        if changed.is_empty() {
            if component.received_revision() != revision {
                component.set_received_revision(revision);
            }
            continue;
        }
        for (i, bytes) in &changed {
            scratch.clear();
            component.encode_field(*i, &mut scratch);
            if scratch.as_slice() != bytes.as_slice() {
                decode_field(&mut *component, *i, bytes);
            }
        }
        if component.received_revision() != revision {
            component.set_received_revision(revision);
        }
        remember(&mut link.last, changed);
        // The object changed since the last synchronisation: a master's
        // duplicas need it (even when the component held the value already).
        if obj.is_master() {
            pending.0.insert(obj.handle);
        }
    }
}

/// Component -> object, for masters whose component changed this frame: the
/// fields that differ from the last synchronisation are written into the
/// object and the object is marked for [`Station::update`].
#[allow(clippy::type_complexity)]
fn component_to_object<T: NetzClass, D: DatasetComponent>(
    mut q: Query<(&NetzObject, &NetzRef<T>, &D, &mut DatasetLink<D>), Changed<D>>,
    mut pending: ResMut<PendingUpdates>,
    mut scratch: Local<Vec<u8>>,
) {
    for (obj, r, component, mut link) in &mut q {
        if !obj.is_master() {
            continue;
        }
        let changed = changed_fields(component, &link.last, &mut scratch);
        if changed.is_empty() {
            continue;
        }
        let link = link.bypass_change_detection();
        {
            let mut guard = r.0.lock();
            let Some(ds) = guard.dataset_mut(link.index) else {
                continue;
            };
            for (i, bytes) in &changed {
                decode_field(ds, *i, bytes);
            }
        }
        remember(&mut link.last, changed);
        pending.0.insert(obj.handle);
    }
}

/// Spawns the entity of one object of a registered class.
pub(crate) type Spawner = fn(&Station, DOHandle, NetzObject, &mut Commands<'_, '_>) -> Entity;

fn spawn_class<T: NetzClass>(
    station: &Station,
    handle: DOHandle,
    obj: NetzObject,
    commands: &mut Commands<'_, '_>,
) -> Entity {
    let mut entity = commands.spawn(obj);
    if let Some(r) = station.get::<T>(handle) {
        {
            let guard = r.lock();
            T::Datasets::insert::<T>(&guard, &mut entity);
        }
        entity.insert(NetzRef(r));
    }
    entity.id()
}

/// The classes registered with Bevy, by class id (and, before the station
/// starts, the registry they go into).
#[derive(Resource, Default)]
pub(crate) struct NetzClasses {
    pub(crate) spawners: HashMap<ClassId, Spawner>,
    pub(crate) names: Vec<&'static str>,
}

/// Registers DO classes with an [`App`](bevy_app::App) that has the
/// [`NetzPlugin`](crate::NetzPlugin).
pub trait NetzAppExt {
    /// Registers class `T` with the station (every station of the session
    /// registers its classes in the same order) and makes its objects
    /// entities with its [`NetzClass::Datasets`] as components.
    ///
    /// # Panics
    ///
    /// Without the plugin, after the station started (the first
    /// `app.update()`), or when the station's registry refuses the class
    /// (twice registered, class id clash).
    fn register_netz_class<T: NetzClass>(&mut self) -> &mut Self;

    /// [`NetzAppExt::register_netz_class`] for a class with `count`
    /// well-known objects (DO-6): they exist on every station from the
    /// start, mastered by the session master.
    fn register_netz_well_known<T: NetzClass>(&mut self, count: u32) -> &mut Self;
}

impl NetzAppExt for bevy_app::App {
    fn register_netz_class<T: NetzClass>(&mut self) -> &mut Self {
        register::<T>(self, None)
    }

    fn register_netz_well_known<T: NetzClass>(&mut self, count: u32) -> &mut Self {
        register::<T>(self, Some(count))
    }
}

fn register<T: NetzClass>(app: &mut bevy_app::App, well_known: Option<u32>) -> &mut bevy_app::App {
    let id = {
        let mut station = app
            .world_mut()
            .get_resource_mut::<NetzStation>()
            .expect("add the NetzPlugin before registering netz classes");
        let registry = station.registry_mut().unwrap_or_else(|| {
            panic!(
                "class `{}` registered after the station started; register classes before the first update",
                T::CLASS_NAME
            )
        });
        let r = match well_known {
            Some(n) => registry.register_well_known::<T>(n),
            None => registry.register::<T>(),
        };
        r.unwrap_or_else(|e| panic!("{e}"))
    };
    {
        let mut classes = app.world_mut().resource_mut::<NetzClasses>();
        classes.spawners.insert(id, spawn_class::<T>);
        classes.names.push(T::CLASS_NAME);
    }
    T::Datasets::add_systems::<T>(app);
    app
}

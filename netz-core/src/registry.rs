//! The classes a station knows, with their ids and factories.

use crate::ids::{ClassId, DOHandle, MethodId, StationId};
use crate::object::{new_cell, DoClass, ErasedCell, MethodInfo, MAX_METHODS};
use std::any::TypeId;
use std::collections::HashMap;
use std::marker::PhantomData;
use std::sync::Arc;

/// Why a class could not be registered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RegistryError {
    /// The explicit class id is outside 100..=255.
    #[error("class `{class}`: class id {id} is out of range (user classes use 100..=255)")]
    ClassIdOutOfRange {
        /// The class.
        class: &'static str,
        /// The id.
        id: u8,
    },
    /// Two classes want the same id.
    #[error("class `{class}`: class id {id} is already used by `{other}`")]
    ClassIdClash {
        /// The class being registered.
        class: &'static str,
        /// The contested id.
        id: u8,
        /// The class holding it.
        other: &'static str,
    },
    /// Every id from 100 to 255 is taken.
    #[error("class `{0}`: no free class id left")]
    NoFreeClassId(&'static str),
    /// The class is registered already.
    #[error("class `{0}` is registered already")]
    AlreadyRegistered(&'static str),
    /// Too many methods.
    #[error("class `{0}` declares more than 255 methods")]
    TooManyMethods(&'static str),
}

pub(crate) type Factory = fn(DOHandle, StationId, StationId) -> Arc<dyn ErasedCell>;

pub(crate) struct ClassEntry {
    pub(crate) id: ClassId,
    pub(crate) name: &'static str,
    pub(crate) type_id: TypeId,
    pub(crate) methods: &'static [MethodInfo],
    pub(crate) factory: Factory,
    pub(crate) well_known: u32,
}

fn factory_of<T: DoClass>(h: DOHandle, local: StationId, master: StationId) -> Arc<dyn ErasedCell> {
    new_cell(T::new_duplica(), h, local, master)
}

/// The classes a station knows, with their ids (VER-1). Every station of a
/// session must register its classes in the same order (or give explicit ids).
pub struct Registry {
    pub(crate) classes: Vec<ClassEntry>,
    by_id: HashMap<u8, usize>,
    by_type: HashMap<TypeId, usize>,
}

impl Default for Registry {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(self.classes.iter().map(|c| (c.id.0, c.name)))
            .finish()
    }
}

impl Registry {
    /// A registry with the core classes (station, session, room) only.
    pub fn new() -> Self {
        let mut r = Registry {
            classes: Vec::new(),
            by_id: HashMap::new(),
            by_type: HashMap::new(),
        };
        r.insert::<crate::builtin::StationObject>(ClassId::STATION, 0);
        r.insert::<crate::builtin::SessionObject>(ClassId::SESSION, 1);
        r.insert::<crate::builtin::RoomObject>(ClassId::ROOM, 0);
        r
    }

    fn insert<T: DoClass>(&mut self, id: ClassId, well_known: u32) {
        let idx = self.classes.len();
        self.classes.push(ClassEntry {
            id,
            name: T::CLASS_NAME,
            type_id: TypeId::of::<T>(),
            methods: T::METHODS,
            factory: factory_of::<T>,
            well_known,
        });
        self.by_id.insert(id.0, idx);
        self.by_type.insert(TypeId::of::<T>(), idx);
    }

    /// Registers a user class: its explicit id, or the lowest free id from 100.
    pub fn register<T: DoClass>(&mut self) -> Result<ClassId, RegistryError> {
        self.register_with(T::CLASS_ID, 0, PhantomData::<T>)
    }

    /// Registers a user class with `count` well-known objects that exist on
    /// every station from session start (DO-6), mastered by the session master.
    pub fn register_well_known<T: DoClass>(
        &mut self,
        count: u32,
    ) -> Result<ClassId, RegistryError> {
        self.register_with(T::CLASS_ID, count, PhantomData::<T>)
    }

    fn register_with<T: DoClass>(
        &mut self,
        explicit: Option<u8>,
        well_known: u32,
        _: PhantomData<T>,
    ) -> Result<ClassId, RegistryError> {
        if self.by_type.contains_key(&TypeId::of::<T>()) {
            return Err(RegistryError::AlreadyRegistered(T::CLASS_NAME));
        }
        if T::METHODS.len() > MAX_METHODS {
            return Err(RegistryError::TooManyMethods(T::CLASS_NAME));
        }
        let id = match explicit {
            Some(id) if id < ClassId::FIRST_USER => {
                return Err(RegistryError::ClassIdOutOfRange {
                    class: T::CLASS_NAME,
                    id,
                })
            }
            Some(id) => {
                if let Some(&i) = self.by_id.get(&id) {
                    return Err(RegistryError::ClassIdClash {
                        class: T::CLASS_NAME,
                        id,
                        other: self.classes[i].name,
                    });
                }
                id
            }
            None => (ClassId::FIRST_USER..=255)
                .find(|i| !self.by_id.contains_key(i))
                .ok_or(RegistryError::NoFreeClassId(T::CLASS_NAME))?,
        };
        self.insert::<T>(ClassId(id), well_known);
        Ok(ClassId(id))
    }

    /// The id of class `T`, if registered.
    pub fn class_id<T: 'static>(&self) -> Option<ClassId> {
        self.by_type
            .get(&TypeId::of::<T>())
            .map(|&i| self.classes[i].id)
    }

    /// The name of class `id`.
    pub fn class_name(&self, id: ClassId) -> Option<&'static str> {
        self.entry(id).map(|c| c.name)
    }

    /// The id of method `name` of class `T` (NetZ `MethodIDGenerator::GetID`).
    pub fn method_id<T: DoClass>(&self, name: &str) -> Option<MethodId> {
        T::METHODS
            .iter()
            .position(|m| m.name == name)
            .map(|i| MethodId(i as u16))
    }

    /// The handle of well-known object `index` of class `T`, if `T` is
    /// registered with at least `index + 1` well-known objects.
    pub fn well_known_handle<T: 'static>(&self, index: u32) -> Option<DOHandle> {
        let c = &self.classes[*self.by_type.get(&TypeId::of::<T>())?];
        (index < c.well_known).then(|| DOHandle::well_known(c.id, index))
    }

    /// The handles of every well-known object.
    pub fn well_known_handles(&self) -> Vec<DOHandle> {
        self.classes
            .iter()
            .flat_map(|c| (0..c.well_known).map(move |i| DOHandle::well_known(c.id, i)))
            .collect()
    }

    pub(crate) fn entry(&self, id: ClassId) -> Option<&ClassEntry> {
        self.by_id.get(&id.0).map(|&i| &self.classes[i])
    }
}

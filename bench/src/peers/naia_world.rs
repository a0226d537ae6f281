//! A minimal naia world: entities are numbers, each with a map of boxed
//! components. naia's server and client keep it in step through the
//! `WorldRefType` / `WorldMutType` traits, implemented here for `&World`
//! and `&mut World`. Only what server-authoritative replication uses does
//! anything: publishing and delegation (client-authoritative entities) are
//! not part of the scenario and do nothing.

use naia_shared::{
    ComponentFieldUpdate, ComponentKind, ComponentUpdate, GlobalWorldManagerType,
    LocalEntityAndGlobalEntityConverter, ReplicaDynMut, ReplicaDynMutWrapper, ReplicaDynRef,
    ReplicaDynRefWrapper, ReplicaMutTrait, ReplicaMutWrapper, ReplicaRefTrait, ReplicaRefWrapper,
    Replicate, ReplicatedComponent, SerdeErr, WorldMutType, WorldRefType,
};
use std::collections::HashMap;

/// An entity of [`World`].
pub type Entity = u32;

/// Entities and their components.
#[derive(Default)]
pub struct World {
    next: Entity,
    entities: HashMap<Entity, HashMap<ComponentKind, Box<dyn Replicate>>>,
}

impl World {
    /// How many entities the world holds.
    pub fn len(&self) -> usize {
        self.entities.len()
    }

    /// Whether the world holds no entity.
    pub fn is_empty(&self) -> bool {
        self.entities.is_empty()
    }

    /// Component `R` of `e`, mutably (for the application's own changes).
    pub fn get_mut<R: Replicate>(&mut self, e: Entity) -> Option<&mut R> {
        self.entities
            .get_mut(&e)?
            .get_mut(&ComponentKind::of::<R>())?
            .to_any_mut()
            .downcast_mut::<R>()
    }
}

struct Ref<'a, R>(&'a R);

impl<R: Replicate> ReplicaRefTrait<R> for Ref<'_, R> {
    fn to_ref(&self) -> &R {
        self.0
    }
}

struct Mut<'a, R>(&'a mut R);

impl<R: Replicate> ReplicaRefTrait<R> for Mut<'_, R> {
    fn to_ref(&self) -> &R {
        self.0
    }
}

impl<R: Replicate> ReplicaMutTrait<R> for Mut<'_, R> {
    fn to_mut(&mut self) -> &mut R {
        self.0
    }
}

fn has_entity(w: &World, e: &Entity) -> bool {
    w.entities.contains_key(e)
}

fn entities(w: &World) -> Vec<Entity> {
    w.entities.keys().copied().collect()
}

fn has_kind(w: &World, e: &Entity, kind: &ComponentKind) -> bool {
    w.entities.get(e).is_some_and(|c| c.contains_key(kind))
}

fn component<'a, R: ReplicatedComponent>(
    w: &'a World,
    e: &Entity,
) -> Option<ReplicaRefWrapper<'a, R>> {
    let c = w.entities.get(e)?.get(&ComponentKind::of::<R>())?;
    let r = c.to_any().downcast_ref::<R>()?;
    Some(ReplicaRefWrapper::new(Ref(r)))
}

fn component_of_kind<'a>(
    w: &'a World,
    e: &Entity,
    kind: &ComponentKind,
) -> Option<ReplicaDynRefWrapper<'a>> {
    let c = w.entities.get(e)?.get(kind)?;
    Some(ReplicaDynRefWrapper::new(ReplicaDynRef::new(c.as_ref())))
}

macro_rules! world_ref {
    ($t:ty) => {
        impl WorldRefType<Entity> for $t {
            fn has_entity(&self, e: &Entity) -> bool {
                has_entity(self, e)
            }
            fn entities(&self) -> Vec<Entity> {
                entities(self)
            }
            fn has_component<R: ReplicatedComponent>(&self, e: &Entity) -> bool {
                has_kind(self, e, &ComponentKind::of::<R>())
            }
            fn has_component_of_kind(&self, e: &Entity, kind: &ComponentKind) -> bool {
                has_kind(self, e, kind)
            }
            fn component<'a, R: ReplicatedComponent>(
                &'a self,
                e: &Entity,
            ) -> Option<ReplicaRefWrapper<'a, R>> {
                component(self, e)
            }
            fn component_of_kind<'a>(
                &'a self,
                e: &Entity,
                kind: &ComponentKind,
            ) -> Option<ReplicaDynRefWrapper<'a>> {
                component_of_kind(self, e, kind)
            }
        }
    };
}

world_ref!(&World);
world_ref!(&mut World);

impl WorldMutType<Entity> for &mut World {
    fn spawn_entity(&mut self) -> Entity {
        let e = self.next;
        self.next += 1;
        self.entities.insert(e, HashMap::new());
        e
    }

    fn local_duplicate_entity(&mut self, e: &Entity) -> Entity {
        let copy = self.spawn_entity();
        self.local_duplicate_components(&copy, e);
        copy
    }

    fn local_duplicate_components(&mut self, to: &Entity, from: &Entity) {
        let copies: Vec<Box<dyn Replicate>> = self
            .entities
            .get(from)
            .map(|c| c.values().map(|v| v.copy_to_box()).collect())
            .unwrap_or_default();
        for c in copies {
            self.insert_boxed_component(to, c);
        }
    }

    fn despawn_entity(&mut self, e: &Entity) {
        self.entities.remove(e);
    }

    fn component_kinds(&mut self, e: &Entity) -> Vec<ComponentKind> {
        self.entities
            .get(e)
            .map(|c| c.keys().copied().collect())
            .unwrap_or_default()
    }

    fn component_mut<'a, R: ReplicatedComponent>(
        &'a mut self,
        e: &Entity,
    ) -> Option<ReplicaMutWrapper<'a, R>> {
        let c = self
            .entities
            .get_mut(e)?
            .get_mut(&ComponentKind::of::<R>())?;
        let r = c.to_any_mut().downcast_mut::<R>()?;
        Some(ReplicaMutWrapper::new(Mut(r)))
    }

    fn component_mut_of_kind<'a>(
        &'a mut self,
        e: &Entity,
        kind: &ComponentKind,
    ) -> Option<ReplicaDynMutWrapper<'a>> {
        let c = self.entities.get_mut(e)?.get_mut(kind)?;
        Some(ReplicaDynMutWrapper::new(ReplicaDynMut::new(c.as_mut())))
    }

    fn component_apply_update(
        &mut self,
        converter: &dyn LocalEntityAndGlobalEntityConverter,
        e: &Entity,
        kind: &ComponentKind,
        update: ComponentUpdate,
    ) -> Result<(), SerdeErr> {
        if let Some(c) = self.entities.get_mut(e).and_then(|c| c.get_mut(kind)) {
            c.read_apply_update(converter, update)?;
        }
        Ok(())
    }

    fn component_apply_field_update(
        &mut self,
        converter: &dyn LocalEntityAndGlobalEntityConverter,
        e: &Entity,
        kind: &ComponentKind,
        update: ComponentFieldUpdate,
    ) -> Result<(), SerdeErr> {
        if let Some(c) = self.entities.get_mut(e).and_then(|c| c.get_mut(kind)) {
            c.read_apply_field_update(converter, update)?;
        }
        Ok(())
    }

    fn mirror_entities(&mut self, to: &Entity, from: &Entity) {
        for kind in self.component_kinds(from) {
            self.mirror_components(to, from, &kind);
        }
    }

    fn mirror_components(&mut self, to: &Entity, from: &Entity, kind: &ComponentKind) {
        let Some(source) = self
            .entities
            .get(from)
            .and_then(|c| c.get(kind))
            .map(|c| c.copy_to_box())
        else {
            return;
        };
        if let Some(c) = self.entities.get_mut(to).and_then(|c| c.get_mut(kind)) {
            c.mirror(source.as_ref());
        }
    }

    fn insert_component<R: ReplicatedComponent>(&mut self, e: &Entity, component: R) {
        self.insert_boxed_component(e, Box::new(component));
    }

    fn insert_boxed_component(&mut self, e: &Entity, component: Box<dyn Replicate>) {
        if let Some(c) = self.entities.get_mut(e) {
            c.insert(component.kind(), component);
        }
    }

    fn remove_component<R: ReplicatedComponent>(&mut self, e: &Entity) -> Option<R> {
        let c = self.remove_component_of_kind(e, &ComponentKind::of::<R>())?;
        c.to_boxed_any().downcast::<R>().ok().map(|b| *b)
    }

    fn remove_component_of_kind(
        &mut self,
        e: &Entity,
        kind: &ComponentKind,
    ) -> Option<Box<dyn Replicate>> {
        self.entities.get_mut(e)?.remove(kind)
    }

    fn entity_publish(&mut self, _: &dyn GlobalWorldManagerType<Entity>, _: &Entity) {}

    fn component_publish(
        &mut self,
        _: &dyn GlobalWorldManagerType<Entity>,
        _: &Entity,
        _: &ComponentKind,
    ) {
    }

    fn entity_unpublish(&mut self, e: &Entity) {
        if let Some(c) = self.entities.get_mut(e) {
            for v in c.values_mut() {
                v.unpublish();
            }
        }
    }

    fn component_unpublish(&mut self, e: &Entity, kind: &ComponentKind) {
        if let Some(c) = self.entities.get_mut(e).and_then(|c| c.get_mut(kind)) {
            c.unpublish();
        }
    }

    fn entity_enable_delegation(&mut self, _: &dyn GlobalWorldManagerType<Entity>, _: &Entity) {}

    fn component_enable_delegation(
        &mut self,
        _: &dyn GlobalWorldManagerType<Entity>,
        _: &Entity,
        _: &ComponentKind,
    ) {
    }

    fn entity_disable_delegation(&mut self, e: &Entity) {
        if let Some(c) = self.entities.get_mut(e) {
            for v in c.values_mut() {
                v.disable_delegation();
            }
        }
    }

    fn component_disable_delegation(&mut self, e: &Entity, kind: &ComponentKind) {
        if let Some(c) = self.entities.get_mut(e).and_then(|c| c.get_mut(kind)) {
            c.disable_delegation();
        }
    }
}

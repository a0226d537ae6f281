//! Interest management: the relevance state and the duplica sets it drives.
//!
//! A master decides which stations hold a duplica of it (see
//! [`crate::interest`] for the rules). What moves an object in or out of a
//! station's relevance: the station declaring its interest (`Interest`),
//! the master's dataset update (the object moved), publication, fault
//! recovery and migration (through `discover_all`). An object entering is
//! discovered there with ChangeDupSet (Create, AddToStore with the full
//! state); one leaving is taken out of the duplica set with ChangeDupSet
//! and the duplica is told `NotRelevant` (RemoveFromStore with
//! [`RemoveReason::NotRelevant`]).

use super::*;
use crate::interest::{Area, ClassInterest, GroupId, Position, Relevance, StationInterest};

/// The side of a grid cell, in world units, by default.
const DEFAULT_CELL: f32 = 64.0;
/// How many groups a station may subscribe to.
pub(super) const MAX_GROUPS: usize = 1024;

type ErasedGroups = Arc<dyn Fn(&Arc<dyn ErasedCell>) -> Vec<GroupId> + Send + Sync>;
type ErasedPosition = Arc<dyn Fn(&Arc<dyn ErasedCell>) -> Option<Position> + Send + Sync>;
type ErasedCustom =
    Arc<dyn Fn(&Arc<dyn ErasedCell>, StationId, &StationInterest) -> bool + Send + Sync>;

/// A class policy over type-erased objects.
#[derive(Clone)]
pub(super) enum Policy {
    Groups(ErasedGroups),
    Spatial(ErasedPosition),
    Custom(ErasedCustom),
}

/// The relevance state of this station.
pub(super) struct Interests {
    /// The policy of each class that is not always relevant.
    policies: BTreeMap<ClassId, Policy>,
    /// What each other station declared.
    declared: BTreeMap<StationId, StationInterest>,
    /// What this station declared.
    mine: Option<StationInterest>,
    /// The side of a grid cell.
    cell: f32,
    /// The local masters of spatial classes, by grid cell.
    cells: BTreeMap<(i32, i32), BTreeSet<DOHandle>>,
    /// The cell and position of each of them.
    at: BTreeMap<DOHandle, ((i32, i32), Position)>,
}

impl Default for Interests {
    fn default() -> Self {
        Interests {
            policies: BTreeMap::new(),
            declared: BTreeMap::new(),
            mine: None,
            cell: DEFAULT_CELL,
            cells: BTreeMap::new(),
            at: BTreeMap::new(),
        }
    }
}

impl Interests {
    /// Whether objects of `class` have a policy (are not always relevant).
    pub(super) fn has_policy(&self, class: ClassId) -> bool {
        !self.policies.is_empty() && self.policies.contains_key(&class)
    }

    fn cell_of(&self, p: Position) -> (i32, i32) {
        (
            (p.x / self.cell).floor() as i32,
            (p.y / self.cell).floor() as i32,
        )
    }

    fn place(&mut self, h: DOHandle, p: Position) {
        let c = self.cell_of(p);
        if let Some((old, _)) = self.at.insert(h, (c, p)) {
            if old != c {
                if let Some(s) = self.cells.get_mut(&old) {
                    s.remove(&h);
                    if s.is_empty() {
                        self.cells.remove(&old);
                    }
                }
            }
        }
        self.cells.entry(c).or_default().insert(h);
    }

    fn unplace(&mut self, h: DOHandle) {
        if let Some((c, _)) = self.at.remove(&h) {
            if let Some(s) = self.cells.get_mut(&c) {
                s.remove(&h);
                if s.is_empty() {
                    self.cells.remove(&c);
                }
            }
        }
    }

    /// The placed objects in the cells a circle of `area.leave` touches.
    fn near(&self, area: &Area, out: &mut BTreeSet<DOHandle>) {
        let r = area.leave.max(0.0);
        let (x0, y0) = self.cell_of(Position::new(area.center.x - r, area.center.y - r));
        let (x1, y1) = self.cell_of(Position::new(area.center.x + r, area.center.y + r));
        let span = (x1 as i64 - x0 as i64 + 1) * (y1 as i64 - y0 as i64 + 1);
        if span > self.cells.len() as i64 {
            // A huge area: walk the occupied cells instead.
            for ((cx, cy), s) in &self.cells {
                if (x0..=x1).contains(cx) && (y0..=y1).contains(cy) {
                    out.extend(s.iter().copied());
                }
            }
            return;
        }
        for cx in x0..=x1 {
            for cy in y0..=y1 {
                if let Some(s) = self.cells.get(&(cx, cy)) {
                    out.extend(s.iter().copied());
                }
            }
        }
    }
}

/// The wire form of an area: centre x, y, enter and leave radii.
pub(super) type WireArea = (f32, f32, f32, f32);

impl Station {
    /// Registers the relevance policy of class `T` on this station (every
    /// station should register the same policies: the master of an object
    /// applies its own, and the session master applies it when it recovers
    /// the object). [`ClassInterest::Always`] removes the policy. The
    /// duplica sets of the local masters of `T` follow at once.
    pub fn set_class_interest<T: DoClass>(
        &mut self,
        now: Instant,
        policy: ClassInterest<T>,
    ) -> Result<(), StationError> {
        self.advance(now);
        let class = self
            .registry
            .class_id::<T>()
            .ok_or(StationError::UnknownClass(T::CLASS_NAME))?;
        let typed = |cell: &Arc<dyn ErasedCell>| Ref::<T>::from_erased(cell.clone());
        let erased = match policy {
            ClassInterest::Always => None,
            ClassInterest::Groups(f) => Some(Policy::Groups(Arc::new(move |c| {
                typed(c).map(|r| f(&r.lock())).unwrap_or_default()
            }))),
            ClassInterest::Spatial(f) => Some(Policy::Spatial(Arc::new(move |c| {
                typed(c).map(|r| f(&r.lock()))
            }))),
            ClassInterest::Custom(f) => Some(Policy::Custom(Arc::new(move |c, s, i| {
                typed(c).is_some_and(|r| f(&r.lock(), s, i))
            }))),
        };
        let had = self.interest.policies.contains_key(&class);
        match erased {
            Some(p) => {
                self.interest.policies.insert(class, p);
            }
            None => {
                self.interest.policies.remove(&class);
            }
        }
        if had || self.interest.policies.contains_key(&class) {
            let hs: Vec<DOHandle> = self
                .masters()
                .into_iter()
                .filter(|h| h.class_id() == class)
                .collect();
            for h in hs {
                if self.interest.has_policy(class) {
                    self.reevaluate_object(h);
                } else {
                    self.interest.unplace(h);
                    self.discover_all(h);
                }
            }
        }
        self.drain_local();
        Ok(())
    }

    /// Sets the side of the cells of the spatial index (default 64 world
    /// units; about the enter radius is a good value). Set it before
    /// publishing spatial objects.
    pub fn set_interest_cell_size(&mut self, side: f32) {
        if side.is_finite() && side > 0.0 {
            self.interest.cell = side;
            let placed: Vec<(DOHandle, Position)> = self
                .interest
                .at
                .iter()
                .map(|(h, (_, p))| (*h, *p))
                .collect();
            self.interest.cells.clear();
            self.interest.at.clear();
            for (h, p) in placed {
                self.interest.place(h, p);
            }
        }
    }

    /// Declares what this station is interested in; every station of the
    /// session learns it (message `Interest`) and its masters update their
    /// duplica sets. Declare it once in the session (and again whenever it
    /// changes: a moving player moves its area).
    pub fn set_interest(
        &mut self,
        now: Instant,
        interest: StationInterest,
    ) -> Result<(), StationError> {
        self.advance(now);
        if !self.is_in_session() {
            return Err(StationError::NotInSession);
        }
        if interest.groups.len() > MAX_GROUPS {
            return Err(StationError::Rejected);
        }
        let msg = interest_msg(&interest);
        self.interest.mine = Some(interest);
        self.broadcast(&msg, &[]);
        self.drain_local();
        Ok(())
    }

    /// What this station declared, or what station `id` declared to it.
    pub fn interest_of(&self, id: StationId) -> Option<&StationInterest> {
        if id == self.membership.id {
            self.interest.mine.as_ref()
        } else {
            self.interest.declared.get(&id)
        }
    }

    /// Why master `handle` is (or is not) relevant to station `station`,
    /// as this station judges it; `None` when `handle` is not a local
    /// master.
    pub fn why_relevant(&self, handle: DOHandle, station: StationId) -> Option<Relevance> {
        let e = self.store.entries.get(&handle)?;
        if e.master != self.membership.id {
            return None;
        }
        Some(self.relevance(handle, station))
    }

    pub(super) fn relevance(&self, handle: DOHandle, station: StationId) -> Relevance {
        let Some(e) = self.store.entries.get(&handle) else {
            return Relevance::Not("not in the store");
        };
        let Some(policy) = self.interest.policies.get(&handle.class_id()) else {
            return Relevance::Always;
        };
        if station == self.membership.session_master
            || self.process_type_of(station) == Some(ProcessType::Server)
        {
            return Relevance::Privileged;
        }
        let default = StationInterest::default();
        let declared = self.interest.declared.get(&station);
        match policy {
            Policy::Groups(f) => {
                let Some(d) = declared else {
                    return Relevance::Not("the station declared no interest");
                };
                match f(&e.cell).into_iter().find(|g| d.groups.contains(g)) {
                    Some(g) => Relevance::Group(g),
                    None => Relevance::Not("no group in common"),
                }
            }
            Policy::Spatial(f) => {
                let Some(area) = declared.and_then(|d| d.area) else {
                    return Relevance::Not("the station declared no area");
                };
                let Some(p) = self
                    .interest
                    .at
                    .get(&handle)
                    .map(|(_, p)| *p)
                    .or_else(|| f(&e.cell))
                else {
                    return Relevance::Not("the object has no position");
                };
                let distance = p.distance(area.center);
                let radius = if e.dup_set.contains(&station) {
                    area.leave
                } else {
                    area.enter
                };
                if distance <= radius {
                    Relevance::Near { distance, radius }
                } else {
                    Relevance::Not("outside the station's area")
                }
            }
            Policy::Custom(f) => {
                if f(&e.cell, station, declared.unwrap_or(&default)) {
                    Relevance::Custom
                } else {
                    Relevance::Not("the class's predicate refuses it")
                }
            }
        }
    }

    /// Whether master `handle` is relevant to `station` (always true for a
    /// class without a policy).
    pub(super) fn relevant(&self, handle: DOHandle, station: StationId) -> bool {
        if !self.interest.has_policy(handle.class_id()) {
            return true;
        }
        self.relevance(handle, station).is_relevant()
    }

    /// Brings `station` into or out of master `handle`'s duplica set as
    /// its relevance says.
    fn apply_relevance(&mut self, handle: DOHandle, station: StationId) {
        if station == self.membership.id || !self.membership.members.contains_key(&station) {
            return;
        }
        let Some(e) = self.store.entries.get(&handle) else {
            return;
        };
        if e.master != self.membership.id {
            return;
        }
        let held = e.dup_set.contains(&station);
        let relevant = self.relevant(handle, station);
        if relevant && !held {
            self.change_dup_set(handle, station, true, self.membership.id);
            if self.holds(handle, station) {
                self.events.push_back(Event::InterestChanged {
                    handle,
                    station,
                    entered: true,
                });
            }
        } else if !relevant && held {
            self.change_dup_set(handle, station, false, self.membership.id);
            if !self.holds(handle, station) {
                self.send(station, SYSTEM_STREAM, Msg::NotRelevant { handle });
                self.events.push_back(Event::InterestChanged {
                    handle,
                    station,
                    entered: false,
                });
            }
        }
    }

    fn holds(&self, handle: DOHandle, station: StationId) -> bool {
        self.store
            .entries
            .get(&handle)
            .is_some_and(|e| e.dup_set.contains(&station))
    }

    /// Re-evaluates master `handle` for every station (it was published,
    /// recovered, taken over, or it moved). Costs one check per station.
    pub(super) fn reevaluate_object(&mut self, handle: DOHandle) {
        let Some(policy) = self.interest.policies.get(&handle.class_id()).cloned() else {
            return;
        };
        let Some(e) = self.store.entries.get(&handle) else {
            self.interest.unplace(handle);
            return;
        };
        if e.master != self.membership.id {
            self.interest.unplace(handle);
            return;
        }
        if let Policy::Spatial(f) = &policy {
            match f(&e.cell) {
                Some(p) if p.x.is_finite() && p.y.is_finite() => self.interest.place(handle, p),
                _ => self.interest.unplace(handle),
            }
        }
        let ids: Vec<StationId> = self.membership.members.keys().copied().collect();
        for id in ids {
            self.apply_relevance(handle, id);
        }
    }

    /// After a dataset update of the masters `changed`: those with a
    /// policy are re-evaluated (the cost follows what moved).
    pub(super) fn interest_after_update(&mut self, changed: &[DOHandle]) {
        if self.interest.policies.is_empty() {
            return;
        }
        for h in changed {
            if self.interest.has_policy(h.class_id()) {
                self.reevaluate_object(*h);
            }
        }
    }

    /// Sends this station's interest to `station` (a new member), if it
    /// declared one.
    pub(super) fn send_interest_to(&mut self, station: StationId) {
        if let Some(i) = &self.interest.mine {
            let msg = interest_msg(i);
            self.send(station, SYSTEM_STREAM, msg);
        }
    }

    /// `Interest`: `origin` declares what it is interested in.
    pub(super) fn on_interest(
        &mut self,
        origin: StationId,
        groups: Vec<GroupId>,
        area: Option<WireArea>,
    ) {
        let area = match area {
            None => None,
            Some((x, y, enter, leave)) => {
                let ok = [x, y, enter, leave].iter().all(|v| v.is_finite())
                    && enter >= 0.0
                    && leave >= enter;
                if !ok {
                    self.refuse("Interest", origin, "a malformed area");
                    return;
                }
                Some(Area {
                    center: Position::new(x, y),
                    enter,
                    leave,
                })
            }
        };
        if groups.len() > MAX_GROUPS || origin == self.membership.id {
            self.refuse("Interest", origin, "too many groups");
            return;
        }
        let new = StationInterest {
            groups: groups.into_iter().collect(),
            area,
        };
        let old = self.interest.declared.insert(origin, new.clone());
        // Stations that left: their interest goes too.
        let members = &self.membership.members;
        self.interest
            .declared
            .retain(|s, _| members.contains_key(s));
        if self.interest.policies.is_empty() {
            return;
        }
        // The candidates: for spatial classes, the objects near the old and
        // the new area; for the others, every master of the class.
        let mut candidates = BTreeSet::new();
        let mut scan = false;
        for p in self.interest.policies.values() {
            match p {
                Policy::Spatial(_) => {
                    for a in [old.as_ref().and_then(|o| o.area), new.area]
                        .into_iter()
                        .flatten()
                    {
                        self.interest.near(&a, &mut candidates);
                    }
                }
                _ => scan = true,
            }
        }
        if scan {
            let id = self.membership.id;
            for (h, e) in self.store.entries.iter() {
                let other = matches!(
                    self.interest.policies.get(&h.class_id()),
                    Some(Policy::Groups(_) | Policy::Custom(_))
                );
                if other && e.master == id {
                    candidates.insert(*h);
                }
            }
        }
        for h in candidates {
            self.apply_relevance(h, origin);
        }
    }

    /// `NotRelevant`: the master says the object left this station's
    /// relevance.
    pub(super) fn on_not_relevant(&mut self, origin: StationId, handle: DOHandle) {
        let Some(e) = self.store.entries.get(&handle) else {
            self.stats.unknown_object += 1;
            return;
        };
        if e.master == self.membership.id || e.master != origin {
            self.refuse("NotRelevant", origin, "not the object's master");
            return;
        }
        if self.remove_from_store(handle, origin, RemoveReason::NotRelevant, false) {
            self.events.push_back(Event::InterestChanged {
                handle,
                station: self.membership.id,
                entered: false,
            });
        }
    }
}

fn interest_msg(i: &StationInterest) -> Msg {
    Msg::Interest {
        groups: i.groups.iter().copied().collect(),
        area: i.area.map(|a| (a.center.x, a.center.y, a.enter, a.leave)),
    }
}

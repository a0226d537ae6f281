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
use crate::fasthash::{FastMap, SeededState};
use crate::interest::{Area, ClassInterest, GroupId, Position, Relevance, StationInterest};

/// The side of a grid cell, in world units, by default.
const DEFAULT_CELL: f32 = 64.0;
/// How many groups a station may subscribe to.
pub(super) const MAX_GROUPS: usize = 1024;
/// The most grid cells a station's area is listed at in the index of
/// declared areas (32 × 32); a larger area is not listed by cell (see
/// [`AreaIndex`]).
const MAX_AREA_CELLS: i64 = 1024;

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

/// The cells an area is listed at: the first and the last cell (inclusive)
/// of the square its leave circle touches, or `None` for an area too large
/// to list.
type Span = Option<((i32, i32), (i32, i32))>;

/// The areas the other stations declared, by grid cell (the cells of the
/// objects' grid, [`Station::set_interest_cell_size`]): what makes a
/// master check a moved object of a spatial class against the stations
/// whose area may hold it rather than every station.
///
/// An area is listed at every cell the square around its leave circle
/// touches, so a station it is listed at is a candidate for every object
/// in such a cell; a station whose area does not touch an object's cell
/// cannot find it relevant. Memory is bounded: an area whose square spans
/// more than [`MAX_AREA_CELLS`] cells (a radius much larger than the cell
/// side) is not listed by cell, its station is checked for every moved
/// object (the full scan, for that station alone).
struct AreaIndex {
    /// The stations listed at each cell, in order (looked up, never
    /// iterated for anything that shows).
    cells: FastMap<(i32, i32), Vec<StationId>>,
    /// The cells each station with an area is listed at.
    spans: BTreeMap<StationId, Span>,
    /// The stations whose area is too large to list, in order.
    wide: BTreeSet<StationId>,
}

impl AreaIndex {
    fn new(seed: u64) -> AreaIndex {
        AreaIndex {
            cells: FastMap::with_hasher(SeededState(seed)),
            spans: BTreeMap::new(),
            wide: BTreeSet::new(),
        }
    }

    /// Lists `station` at `span` (`None`: its area is too large).
    fn insert(&mut self, station: StationId, span: Span) {
        self.remove(station);
        self.spans.insert(station, span);
        let Some(((x0, y0), (x1, y1))) = span else {
            self.wide.insert(station);
            return;
        };
        for cx in x0..=x1 {
            for cy in y0..=y1 {
                let v = self.cells.entry((cx, cy)).or_default();
                if let Err(i) = v.binary_search(&station) {
                    v.insert(i, station);
                }
            }
        }
    }

    /// Takes `station` out of the index.
    fn remove(&mut self, station: StationId) {
        match self.spans.remove(&station) {
            None => {}
            Some(None) => {
                self.wide.remove(&station);
            }
            Some(Some(((x0, y0), (x1, y1)))) => {
                for cx in x0..=x1 {
                    for cy in y0..=y1 {
                        if let Some(v) = self.cells.get_mut(&(cx, cy)) {
                            if let Ok(i) = v.binary_search(&station) {
                                v.remove(i);
                            }
                            if v.is_empty() {
                                self.cells.remove(&(cx, cy));
                            }
                        }
                    }
                }
            }
        }
    }

    /// The stations listed at `cell`.
    fn at(&self, cell: (i32, i32)) -> &[StationId] {
        self.cells.get(&cell).map_or(&[], Vec::as_slice)
    }

    fn clear(&mut self) {
        self.cells.clear();
        self.spans.clear();
        self.wide.clear();
    }
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
    /// The cell and position of each of them (looked up, never iterated
    /// for anything that shows).
    at: FastMap<DOHandle, ((i32, i32), Position)>,
    /// The declared areas by cell.
    areas: AreaIndex,
    /// The other members that are servers (they see every object): kept
    /// as members join (`add_member`) and go (`station_gone`).
    servers: BTreeSet<StationId>,
    /// Whether moved spatial objects are checked against every station
    /// (the index unused; for tests that compare the two).
    full_scan: bool,
}

impl Interests {
    /// No policy and no declared interest; `seed` seeds the hash maps.
    pub(super) fn new(seed: u64) -> Self {
        Interests {
            policies: BTreeMap::new(),
            declared: BTreeMap::new(),
            mine: None,
            cell: DEFAULT_CELL,
            cells: BTreeMap::new(),
            at: FastMap::with_hasher(SeededState(seed)),
            areas: AreaIndex::new(seed.rotate_left(32)),
            servers: BTreeSet::new(),
            full_scan: false,
        }
    }

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

    /// Places `h` at `p`; returns its cell.
    fn place(&mut self, h: DOHandle, p: Position) -> (i32, i32) {
        let c = self.cell_of(p);
        if let Some((old, _)) = self.at.insert(h, (c, p)) {
            if old == c {
                // Still in the same cell: listed there already.
                return c;
            }
            if let Some(s) = self.cells.get_mut(&old) {
                s.remove(&h);
                if s.is_empty() {
                    self.cells.remove(&old);
                }
            }
        }
        self.cells.entry(c).or_default().insert(h);
        c
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

    /// The cells the index lists `area` at. The square is padded a little
    /// beyond the leave radius (and worked out in `f64`), so that every
    /// position the distance check (in `f32`, rounding) puts within the
    /// radius falls in a listed cell.
    fn span_of(&self, area: &Area) -> Span {
        let r = f64::from(area.leave.max(0.0)) * (1.0 + 1e-5) + 1e-6;
        let (x, y) = (f64::from(area.center.x), f64::from(area.center.y));
        let lo = self.cell_of(Position::new((x - r) as f32, (y - r) as f32));
        let hi = self.cell_of(Position::new((x + r) as f32, (y + r) as f32));
        let n = (hi.0 as i64 - lo.0 as i64 + 1) * (hi.1 as i64 - lo.1 as i64 + 1);
        (n <= MAX_AREA_CELLS).then_some((lo, hi))
    }

    /// Lists what `station` declared in the index of areas (or takes it
    /// out if it declared no area).
    fn index_area(&mut self, station: StationId, area: Option<Area>) {
        match area {
            None => self.areas.remove(station),
            Some(a) => {
                let span = self.span_of(&a);
                if self.areas.spans.get(&station) != Some(&span) {
                    self.areas.insert(station, span);
                }
            }
        }
    }

    /// Lists every declared area again (the cell size changed).
    fn reindex_areas(&mut self) {
        self.areas.clear();
        let areas: Vec<(StationId, Area)> = self
            .declared
            .iter()
            .filter_map(|(s, d)| d.area.map(|a| (*s, a)))
            .collect();
        for (s, a) in areas {
            self.index_area(s, Some(a));
        }
    }

    /// Station `id` is gone: what it declared goes too.
    fn forget(&mut self, id: StationId) {
        self.declared.remove(&id);
        self.areas.remove(id);
        self.servers.remove(&id);
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
    ///
    /// The same cells index the areas the other stations declared: a
    /// master checks a moved object of a spatial class only against the
    /// stations whose area (the square around its leave radius) touches
    /// the object's cell, those holding the object, the session master and
    /// the servers. An area spanning more than 1024 cells (32 × 32: a leave
    /// radius beyond about 15 cell sides) is not indexed, to keep the index
    /// small; its station is checked for every moved object, as if there
    /// were no index.
    pub fn set_interest_cell_size(&mut self, side: f32) {
        if side.is_finite() && side > 0.0 {
            self.interest.cell = side;
            let mut placed: Vec<(DOHandle, Position)> = self
                .interest
                .at
                .iter()
                .map(|(h, (_, p))| (*h, *p))
                .collect();
            placed.sort_unstable_by_key(|(h, _)| *h);
            self.interest.cells.clear();
            self.interest.at.clear();
            for (h, p) in placed {
                self.interest.place(h, p);
            }
            self.interest.reindex_areas();
        }
    }

    /// Whether a moved object of a spatial class is checked against every
    /// station (`true`) rather than the stations the index of declared
    /// areas lists at its cell, those holding it and the privileged ones
    /// (`false`, the default). The outcome is the same; for tests that
    /// compare the two.
    #[doc(hidden)]
    pub fn set_interest_full_scan(&mut self, on: bool) {
        self.interest.full_scan = on;
    }

    /// The stations the index of declared areas lists at `p`'s cell, with
    /// those whose area is too large to list by cell, in order (a superset
    /// of the stations whose leave radius holds `p`); for tests.
    #[doc(hidden)]
    pub fn interest_index_at(&self, p: Position) -> Vec<StationId> {
        let mut v: Vec<StationId> = self.interest.areas.at(self.interest.cell_of(p)).to_vec();
        v.extend(self.interest.areas.wide.iter().copied());
        v.sort_unstable();
        v.dedup();
        v
    }

    /// How many (cell, station) listings the index of declared areas
    /// holds; for tests of its bounds.
    #[doc(hidden)]
    pub fn interest_index_size(&self) -> usize {
        self.interest.areas.cells.values().map(Vec::len).sum()
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
        self.relevance_of(handle, e, station)
    }

    /// [`Station::relevance`] of `handle`, whose store entry is `e`.
    fn relevance_of(&self, handle: DOHandle, e: &Entry, station: StationId) -> Relevance {
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
        let relevant = !self.interest.has_policy(handle.class_id())
            || self.relevance_of(handle, e, station).is_relevant();
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
    /// recovered, taken over, or it moved). Costs one check per station for
    /// group and custom classes; for a spatial class, one check per station
    /// that may find it relevant or must see it leave: those whose declared
    /// area touches its cell (the index of areas), those holding it, and
    /// the session master and the servers. Every other station declared no
    /// area or one that cannot hold the object's position, and does not
    /// hold it: its check would change nothing. The stations are checked in
    /// order, as every station is otherwise.
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
            let cell = match f(&e.cell) {
                Some(p) if p.x.is_finite() && p.y.is_finite() => {
                    Some(self.interest.place(handle, p))
                }
                _ => {
                    self.interest.unplace(handle);
                    None
                }
            };
            if !self.interest.full_scan {
                for id in self.spatial_candidates(cell, &e.dup_set) {
                    self.apply_relevance(handle, id);
                }
                return;
            }
        }
        let ids: Vec<StationId> = self.membership.members.keys().copied().collect();
        for id in ids {
            self.apply_relevance(handle, id);
        }
    }

    /// The stations a check of a master of a spatial class may change
    /// something for, in order: those holding it (`held`), those the index
    /// of areas lists at its cell (none if it has no position), and the
    /// privileged ones.
    fn spatial_candidates(
        &self,
        cell: Option<(i32, i32)>,
        held: &BTreeSet<StationId>,
    ) -> Vec<StationId> {
        debug_assert_eq!(
            self.interest.servers,
            self.membership
                .members
                .iter()
                .filter(|(id, m)| {
                    **id != self.membership.id && m.info.process_type == ProcessType::Server
                })
                .map(|(id, _)| *id)
                .collect::<BTreeSet<_>>(),
            "the servers are known"
        );
        let i = &self.interest;
        let listed = cell.map_or(&[][..], |c| i.areas.at(c));
        let mut ids: Vec<StationId> = Vec::with_capacity(
            listed.len() + held.len() + i.areas.wide.len() + i.servers.len() + 1,
        );
        ids.extend_from_slice(listed);
        ids.extend(held.iter().copied());
        ids.extend(i.areas.wide.iter().copied());
        ids.extend(i.servers.iter().copied());
        ids.push(self.membership.session_master);
        ids.sort_unstable();
        ids.dedup();
        ids
    }

    /// A member joined: a server among them sees every object.
    pub(super) fn interest_member_added(&mut self, info: &StationInfo) {
        if info.process_type == ProcessType::Server && info.id != self.membership.id {
            self.interest.servers.insert(info.id);
        }
    }

    /// Station `id` left the session (or failed): its declared interest and
    /// its place in the index of areas go.
    pub(super) fn interest_station_gone(&mut self, id: StationId) {
        self.interest.forget(id);
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
        self.interest.index_area(origin, new.area);
        // Stations that left: their interest goes too.
        let members = &self.membership.members;
        let left: Vec<StationId> = self
            .interest
            .declared
            .keys()
            .filter(|s| !members.contains_key(s))
            .copied()
            .collect();
        for s in left {
            self.interest.forget(s);
        }
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

//! Interest management: which stations an object is relevant to.
//!
//! The master of an object decides which stations hold a duplica of it:
//! a station holds one while the object is relevant to it. Relevance comes
//! from the object's class policy ([`ClassInterest`], registered with
//! [`Station::set_class_interest`](crate::Station::set_class_interest))
//! and from the interest each station declares ([`StationInterest`], with
//! [`Station::set_interest`](crate::Station::set_interest)), which travels
//! to every station of the session.
//!
//! Rules:
//! - A class without a policy is always relevant (today's behaviour).
//! - Masters are never affected: relevance only decides duplicas.
//! - The session master and the servers see every object whatever their
//!   interest, so fault recovery (run by the session master from its
//!   duplica) and migration between servers keep working for objects
//!   other stations do not see.
//! - A station that declared no interest sees no object of a class with a
//!   group or spatial policy.

use crate::ids::StationId;
use std::collections::BTreeSet;
use std::sync::Arc;

/// A point in the world (two dimensions; games in 3D project onto their
/// ground plane).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Position {
    /// East-west.
    pub x: f32,
    /// North-south.
    pub y: f32,
}

impl Position {
    /// The point `(x, y)`.
    pub const fn new(x: f32, y: f32) -> Position {
        Position { x, y }
    }

    /// The distance to `other`.
    pub fn distance(self, other: Position) -> f32 {
        let (dx, dy) = (self.x - other.x, self.y - other.y);
        (dx * dx + dy * dy).sqrt()
    }
}

/// An object whose position comes from its dataset (for spatial interest).
pub trait Positioned {
    /// Where the object is.
    fn position(&self) -> Position;
}

/// A group (room, team, zone) objects belong to and stations subscribe to.
pub type GroupId = u32;

/// An area of interest: a circle around a point, with hysteresis. An
/// object enters at `enter` or closer and leaves beyond `leave`
/// (`leave >= enter`), so objects at the border do not flap.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Area {
    /// The centre.
    pub center: Position,
    /// The radius an object enters at.
    pub enter: f32,
    /// The radius an object leaves beyond.
    pub leave: f32,
}

/// What a station declares it is interested in.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct StationInterest {
    /// The groups it subscribes to.
    pub groups: BTreeSet<GroupId>,
    /// Its area, for spatial classes.
    pub area: Option<Area>,
}

impl StationInterest {
    /// No group and no area.
    pub fn new() -> StationInterest {
        StationInterest::default()
    }

    /// Subscribes to `group` too.
    pub fn with_group(mut self, group: GroupId) -> StationInterest {
        self.groups.insert(group);
        self
    }

    /// Sets the area: the circle of radius `enter` around `center`, left
    /// beyond `leave` (raised to `enter` if smaller).
    pub fn with_area(mut self, center: Position, enter: f32, leave: f32) -> StationInterest {
        self.area = Some(Area {
            center,
            enter,
            leave: leave.max(enter),
        });
        self
    }
}

type GroupsFn<T> = Arc<dyn Fn(&T) -> Vec<GroupId> + Send + Sync>;
type PositionFn<T> = Arc<dyn Fn(&T) -> Position + Send + Sync>;
type CustomFn<T> = Arc<dyn Fn(&T, StationId, &StationInterest) -> bool + Send + Sync>;

/// The relevance policy of a class `T`.
pub enum ClassInterest<T> {
    /// Relevant to every station (the default).
    Always,
    /// Relevant to the stations subscribed to one of the object's groups.
    Groups(GroupsFn<T>),
    /// Relevant to the stations whose area holds the object's position.
    Spatial(PositionFn<T>),
    /// Relevant when the predicate says so (object, station, its interest).
    Custom(CustomFn<T>),
}

impl<T> ClassInterest<T> {
    /// Relevant to the stations subscribed to one of the groups `f` gives.
    pub fn groups(f: impl Fn(&T) -> Vec<GroupId> + Send + Sync + 'static) -> Self {
        ClassInterest::Groups(Arc::new(f))
    }

    /// Relevant to the stations whose area holds the position `f` gives.
    pub fn spatial_by(f: impl Fn(&T) -> Position + Send + Sync + 'static) -> Self {
        ClassInterest::Spatial(Arc::new(f))
    }

    /// Relevant when `f(object, station, its interest)` says so.
    pub fn custom(
        f: impl Fn(&T, StationId, &StationInterest) -> bool + Send + Sync + 'static,
    ) -> Self {
        ClassInterest::Custom(Arc::new(f))
    }
}

impl<T: Positioned> ClassInterest<T> {
    /// Relevant to the stations whose area holds [`Positioned::position`].
    pub fn spatial() -> Self {
        ClassInterest::Spatial(Arc::new(|o: &T| o.position()))
    }
}

/// Why an object is (or is not) relevant to a station, as its master
/// judges it ([`Station::why_relevant`](crate::Station::why_relevant)).
#[derive(Clone, Debug, PartialEq)]
pub enum Relevance {
    /// Its class is always relevant.
    Always,
    /// The station is the session master or a server: it sees everything.
    Privileged,
    /// The station subscribes to this group of the object's.
    Group(GroupId),
    /// The object is this far from the station's centre, within the radius
    /// that applies (the leave radius while it holds a duplica, the enter
    /// radius otherwise).
    Near {
        /// The distance.
        distance: f32,
        /// The radius that applies.
        radius: f32,
    },
    /// The class's predicate accepts it.
    Custom,
    /// Not relevant, for this reason.
    Not(&'static str),
}

impl Relevance {
    /// Whether the object is relevant.
    pub fn is_relevant(&self) -> bool {
        !matches!(self, Relevance::Not(_))
    }
}

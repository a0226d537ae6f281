//! What a slot's server has told the supervisor through the Agones SDK:
//! labels, annotations, Counters and Lists, readiness and health pings.
//! Plain data with its rules; the supervisor owns one per slot and resets
//! it when a new process starts.

use std::collections::BTreeMap;
use std::time::Instant;

use crate::error::HostError;

/// The prefix Agones puts before labels and annotations set through the SDK.
pub const SDK_METADATA_PREFIX: &str = "agones.dev/sdk-";
/// The name of the predefined counter and list that track players.
pub const PLAYERS: &str = "players";

/// A counter: a count within `0..=capacity`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Counter {
    /// The count.
    pub count: i64,
    /// Its upper bound.
    pub capacity: i64,
}

/// A list: distinct values, at most `capacity` of them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct List {
    /// Most values it holds.
    pub capacity: i64,
    /// The values, in the order added.
    pub values: Vec<String>,
}

/// The SDK side of one slot's game server.
#[derive(Debug, Clone)]
pub struct GameServerRecord {
    /// Labels, with the SDK prefix.
    pub labels: BTreeMap<String, String>,
    /// Annotations, with the SDK prefix.
    pub annotations: BTreeMap<String, String>,
    /// Counters by name.
    pub counters: BTreeMap<String, Counter>,
    /// Lists by name.
    pub lists: BTreeMap<String, List>,
    /// Whether the server called `Ready` (since it started or was last
    /// allocated).
    pub sdk_ready: bool,
    /// The last `Health` ping.
    pub last_health: Option<Instant>,
    /// Bumped on every change (the GameServer's `generation`).
    pub generation: u64,
}

fn check_key(key: &str) -> Result<(), HostError> {
    let ok = !key.is_empty()
        && key.len() + SDK_METADATA_PREFIX.len() <= 63
        && key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
        && key.as_bytes()[key.len() - 1].is_ascii_alphanumeric();
    if ok {
        Ok(())
    } else {
        Err(HostError::BadRequest(format!(
            "{key:?} is not a valid key: up to {} characters of A-Z a-z 0-9 - _ ., ending in a letter or digit",
            63 - SDK_METADATA_PREFIX.len()
        )))
    }
}

fn no_counter(name: &str) -> HostError {
    HostError::NotFound(format!("no counter named {name:?}"))
}

fn no_list(name: &str) -> HostError {
    HostError::NotFound(format!("no list named {name:?}"))
}

impl GameServerRecord {
    /// A fresh record with the predefined `players` counter and list.
    pub fn new(player_capacity: i64) -> GameServerRecord {
        let mut counters = BTreeMap::new();
        counters.insert(
            PLAYERS.to_owned(),
            Counter {
                count: 0,
                capacity: player_capacity,
            },
        );
        let mut lists = BTreeMap::new();
        lists.insert(
            PLAYERS.to_owned(),
            List {
                capacity: player_capacity,
                values: Vec::new(),
            },
        );
        GameServerRecord {
            labels: BTreeMap::new(),
            annotations: BTreeMap::new(),
            counters,
            lists,
            sdk_ready: false,
            last_health: None,
            generation: 1,
        }
    }

    /// Sets `agones.dev/sdk-<key>` among the labels.
    pub fn set_label(&mut self, key: &str, value: &str) -> Result<(), HostError> {
        check_key(key)?;
        self.labels
            .insert(format!("{SDK_METADATA_PREFIX}{key}"), value.to_owned());
        self.generation += 1;
        Ok(())
    }

    /// Sets `agones.dev/sdk-<key>` among the annotations.
    pub fn set_annotation(&mut self, key: &str, value: &str) -> Result<(), HostError> {
        check_key(key)?;
        self.annotations
            .insert(format!("{SDK_METADATA_PREFIX}{key}"), value.to_owned());
        self.generation += 1;
        Ok(())
    }

    /// A counter.
    pub fn counter(&self, name: &str) -> Result<Counter, HostError> {
        self.counters
            .get(name)
            .copied()
            .ok_or_else(|| no_counter(name))
    }

    /// Sets a counter's count and/or capacity, or moves its count by
    /// `diff`; a count outside `0..=capacity` is refused.
    pub fn update_counter(
        &mut self,
        name: &str,
        count: Option<i64>,
        capacity: Option<i64>,
        diff: i64,
    ) -> Result<Counter, HostError> {
        let c = self
            .counters
            .get_mut(name)
            .ok_or_else(|| no_counter(name))?;
        let mut next = *c;
        if let Some(cap) = capacity {
            if cap < 0 {
                return Err(HostError::OutOfRange(format!(
                    "capacity {cap} of counter {name:?} is negative"
                )));
            }
            next.capacity = cap;
        }
        if let Some(n) = count {
            next.count = n;
        }
        next.count = next
            .count
            .checked_add(diff)
            .ok_or_else(|| HostError::OutOfRange(format!("counter {name:?} would overflow")))?;
        if next.count < 0 || next.count > next.capacity {
            return Err(HostError::OutOfRange(format!(
                "counter {name:?} would be {} (capacity {})",
                next.count, next.capacity
            )));
        }
        *c = next;
        self.generation += 1;
        Ok(next)
    }

    /// A list.
    pub fn list(&self, name: &str) -> Result<List, HostError> {
        self.lists.get(name).cloned().ok_or_else(|| no_list(name))
    }

    /// Sets a list's capacity (values over it are dropped from the end)
    /// and/or its values (duplicates dropped; more than the capacity is
    /// refused).
    pub fn update_list(
        &mut self,
        name: &str,
        capacity: Option<i64>,
        values: Option<Vec<String>>,
    ) -> Result<List, HostError> {
        let l = self.lists.get_mut(name).ok_or_else(|| no_list(name))?;
        let mut next = l.clone();
        if let Some(cap) = capacity {
            if !(0..=1000).contains(&cap) {
                return Err(HostError::OutOfRange(format!(
                    "capacity {cap} of list {name:?} is outside 0..=1000"
                )));
            }
            next.capacity = cap;
        }
        if let Some(v) = values {
            let mut seen = std::collections::BTreeSet::new();
            next.values = v.into_iter().filter(|x| seen.insert(x.clone())).collect();
            if next.values.len() as i64 > next.capacity {
                return Err(HostError::OutOfRange(format!(
                    "{} values for list {name:?} of capacity {}",
                    next.values.len(),
                    next.capacity
                )));
            }
        }
        next.values.truncate(next.capacity.max(0) as usize);
        *l = next.clone();
        self.generation += 1;
        Ok(next)
    }

    /// Adds a value to a list.
    pub fn add_list_value(&mut self, name: &str, value: &str) -> Result<List, HostError> {
        let l = self.lists.get_mut(name).ok_or_else(|| no_list(name))?;
        if l.values.iter().any(|v| v == value) {
            return Err(HostError::AlreadyExists(format!(
                "{value:?} is already in list {name:?}"
            )));
        }
        if l.values.len() as i64 >= l.capacity {
            return Err(HostError::OutOfRange(format!(
                "list {name:?} is at its capacity of {}",
                l.capacity
            )));
        }
        l.values.push(value.to_owned());
        let out = l.clone();
        self.generation += 1;
        Ok(out)
    }

    /// Removes a value from a list.
    pub fn remove_list_value(&mut self, name: &str, value: &str) -> Result<List, HostError> {
        let l = self.lists.get_mut(name).ok_or_else(|| no_list(name))?;
        let before = l.values.len();
        l.values.retain(|v| v != value);
        if l.values.len() == before {
            return Err(HostError::NotFound(format!(
                "{value:?} is not in list {name:?}"
            )));
        }
        let out = l.clone();
        self.generation += 1;
        Ok(out)
    }
}

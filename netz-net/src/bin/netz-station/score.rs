//! `Score`: the DO class of the `netz-station` binary and the tests.
//!
//! Written by hand the way `#[doclass]` would generate it: one dataset
//! (`value`, `owner`, `recover`), an RMC `add(i64) -> i64` and an action
//! `bump(i64)`.
#![allow(dead_code)]

use netz_core::{
    decode_value, encode_value, CallContext, DataSet, DecodeError, DispatchError, DoClass,
    MethodId, MethodInfo, MethodKind, ObjectProxy, Registry,
};
use std::sync::Arc;

/// The replicated state of a [`Score`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ScoreData {
    /// The score.
    pub value: i64,
    /// Who published it.
    pub owner: String,
    /// Whether the session takes the object over when its master fails.
    pub recover: bool,
    received: u8,
}

impl DataSet for ScoreData {
    fn name(&self) -> &'static str {
        "ScoreData"
    }
    fn field_names(&self) -> &'static [&'static str] {
        &["value", "owner", "recover"]
    }
    fn field_revisions(&self) -> &'static [u8] {
        &[0, 0, 0]
    }
    fn encode_field(&self, i: usize, out: &mut Vec<u8>) {
        match i {
            0 => encode_value(&self.value, out),
            1 => encode_value(&self.owner, out),
            _ => encode_value(&self.recover, out),
        }
    }
    fn decode_field(&mut self, i: usize, input: &mut &[u8]) -> Result<(), DecodeError> {
        match i {
            0 => self.value = decode_value(input, "ScoreData.value")?,
            1 => self.owner = decode_value(input, "ScoreData.owner")?,
            _ => self.recover = decode_value(input, "ScoreData.recover")?,
        }
        Ok(())
    }
    fn received_revision(&self) -> u8 {
        self.received
    }
    fn set_received_revision(&mut self, r: u8) {
        self.received = r
    }
}

/// A score object.
#[derive(Debug, Default)]
pub struct Score {
    /// Its dataset.
    pub data: ScoreData,
    /// How much `bump` added here (actions run on every copy).
    pub bumps: i64,
    /// Every `bump` argument seen here, in order.
    pub seen: Vec<i64>,
}

/// `add(i64) -> i64`: adds to the value on the master, returns the new value.
pub const ADD: MethodId = MethodId(0);
/// `bump(i64)`: an action counted on every copy.
pub const BUMP: MethodId = MethodId(1);

impl Score {
    /// A master score.
    pub fn new(value: i64, owner: &str, recover: bool) -> Self {
        Score {
            data: ScoreData {
                value,
                owner: owner.into(),
                recover,
                received: 0,
            },
            bumps: 0,
            seen: Vec::new(),
        }
    }
}

impl DoClass for Score {
    const CLASS_NAME: &'static str = "Score";
    const METHODS: &'static [MethodInfo] = &[
        MethodInfo {
            name: "add",
            kind: MethodKind::Rmc,
        },
        MethodInfo {
            name: "bump",
            kind: MethodKind::Action,
        },
    ];
    type Proxy<'a> = ObjectProxy<'a, Self>;
    fn new_duplica() -> Self {
        Score::default()
    }
    fn dataset_count(&self) -> usize {
        1
    }
    fn dataset(&self, i: usize) -> Option<&dyn DataSet> {
        (i == 0).then_some(&self.data as &dyn DataSet)
    }
    fn dataset_mut(&mut self, i: usize) -> Option<&mut dyn DataSet> {
        (i == 0).then_some(&mut self.data as &mut dyn DataSet)
    }
    fn approve_fault_recovery(&mut self) -> bool {
        self.data.recover
    }
    fn dispatch(
        &mut self,
        _call: &mut CallContext<'_>,
        method: MethodId,
        args: &[u8],
    ) -> Result<Vec<u8>, DispatchError> {
        let (n,): (i64,) = postcard::from_bytes(args).map_err(|_| DispatchError::BadArguments)?;
        match method {
            ADD => {
                self.data.value += n;
                postcard::to_allocvec(&self.data.value).map_err(|_| DispatchError::BadArguments)
            }
            BUMP => {
                self.bumps += n;
                self.seen.push(n);
                Ok(Vec::new())
            }
            m => Err(DispatchError::UnknownMethod(m)),
        }
    }
}

/// A registry holding [`Score`].
pub fn registry() -> Arc<Registry> {
    let mut r = Registry::new();
    r.register::<Score>().expect("register Score");
    Arc::new(r)
}

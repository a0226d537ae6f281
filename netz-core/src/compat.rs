//! Class compatibility at join: a joiner's classes against the session's.
//!
//! A joiner sends a description of its registry with its join request
//! (class ids and names, method names and kinds, dataset field names with
//! their revisions). The session master compares it with its own and
//! refuses a joiner whose classes would be misread: a class id naming
//! another class (classes registered in another order), a method at the
//! same index with another name or kind, a dataset field at the same index
//! with another name. What 14.4 allows still joins: RMCs appended at the
//! end, datasets appended at the end, fields appended with a revision above
//! 0, and classes one side does not know.

use crate::ids::ClassId;
use crate::object::{MethodKind, MAX_DATASET_FIELDS};
use crate::registry::Registry;
use serde::{Deserialize, Serialize};

/// The prefix of the reason a joiner with incompatible classes is refused with.
pub(crate) const INCOMPATIBLE: &str = "incompatible classes: ";

/// One class as a registry describes it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct ClassDesc {
    pub(crate) id: u8,
    pub(crate) name: String,
    /// (name, is an action) of every method, in id order.
    pub(crate) methods: Vec<(String, bool)>,
    /// Per dataset: (name, revision) of every field.
    pub(crate) datasets: Vec<Vec<(String, u8)>>,
}

/// The user classes of `registry` (ids from 100: the core's own are the same
/// in every build).
pub(crate) fn describe(registry: &Registry) -> Vec<ClassDesc> {
    registry
        .classes
        .iter()
        .filter(|c| c.id.0 >= ClassId::FIRST_USER)
        .map(|c| {
            let cell = (c.factory)(
                crate::DOHandle::new(c.id, crate::StationId::NONE, 0),
                crate::StationId::NONE,
                crate::StationId::NONE,
            );
            let mut datasets = Vec::new();
            cell.with_dyn(&mut |o| {
                for i in 0..o.dataset_count() {
                    let Some(d) = o.dataset(i) else { continue };
                    let revs = d.field_revisions();
                    let fields = d
                        .field_names()
                        .iter()
                        .take(MAX_DATASET_FIELDS)
                        .enumerate()
                        .map(|(f, n)| (n.to_string(), revs.get(f).copied().unwrap_or(0)))
                        .collect();
                    datasets.push(fields);
                }
            });
            ClassDesc {
                id: c.id.0,
                name: c.name.to_string(),
                methods: c
                    .methods
                    .iter()
                    .map(|m| (m.name.to_string(), m.kind == MethodKind::Action))
                    .collect(),
                datasets,
            }
        })
        .collect()
}

/// `describe(registry)`, encoded for a join request.
pub(crate) fn encode(registry: &Registry) -> Vec<u8> {
    postcard::to_allocvec(&describe(registry)).unwrap_or_default()
}

/// Whether a joiner whose classes are `theirs` (encoded) may join a session
/// whose classes are `ours`; the reason names the class and the difference.
/// An empty description is not checked (a joiner that sends none).
pub(crate) fn check(ours: &[ClassDesc], theirs: &[u8]) -> Result<(), String> {
    if theirs.is_empty() {
        return Ok(());
    }
    let theirs: Vec<ClassDesc> = postcard::from_bytes(theirs)
        .map_err(|_| "the joiner's class description does not decode".to_string())?;
    for t in &theirs {
        let Some(o) = ours.iter().find(|o| o.id == t.id) else {
            continue;
        };
        if o.name != t.name {
            return Err(format!(
                "class id {} is `{}` in the session and `{}` in the joiner's build \
                 (register the classes in the same order, or give them explicit ids)",
                t.id, o.name, t.name
            ));
        }
        for (i, (a, b)) in o.methods.iter().zip(&t.methods).enumerate() {
            if a != b {
                return Err(format!(
                    "class `{}`: method {i} is `{}`{} in the session and `{}`{} in the joiner's build \
                     (new methods go at the end)",
                    o.name,
                    a.0,
                    if a.1 { " (an action)" } else { "" },
                    b.0,
                    if b.1 { " (an action)" } else { "" },
                ));
            }
        }
        for (d, (a, b)) in o.datasets.iter().zip(&t.datasets).enumerate() {
            for (f, (x, y)) in a.iter().zip(b).enumerate() {
                if x.0 != y.0 {
                    return Err(format!(
                        "class `{}`: field {f} of dataset {d} is `{}` in the session and `{}` in the joiner's build",
                        o.name, x.0, y.0
                    ));
                }
            }
            let (longer, side) = if a.len() > b.len() {
                (&a[b.len()..], "session")
            } else {
                (&b[a.len()..], "joiner's build")
            };
            if let Some((name, _)) = longer.iter().find(|(_, rev)| *rev == 0) {
                return Err(format!(
                    "class `{}`: dataset {d} has field `{name}` only in the {side}, at revision 0 \
                     (a field added later needs a higher revision)",
                    o.name
                ));
            }
        }
    }
    Ok(())
}

//! The dataset delta codec.

use crate::object::{DoDyn, ErasedCell};
use crate::operation::{Operation, Payload};
use crate::wire::{get_varint, put_varint};
use std::sync::Arc;

// ------------------------------------------------------------ dataset codec
//
// A dataset message is `count` entries of
// `[dataset index][revision u8][field mask varint][byte length][fields]`.
// Fields beyond what the receiver knows come last and are skipped; datasets
// the receiver does not know are skipped by length (VER-3).

pub(crate) trait CellExt {
    fn snapshot_fields(&self) -> Vec<Vec<Vec<u8>>>;
}

impl CellExt for Arc<dyn ErasedCell> {
    fn snapshot_fields(&self) -> Vec<Vec<Vec<u8>>> {
        let mut snap = Vec::new();
        self.with_dyn(&mut |o| {
            for i in 0..o.dataset_count() {
                let Some(d) = o.dataset(i) else { continue };
                let fields = (0..d.field_names().len().min(crate::object::MAX_DATASET_FIELDS))
                    .map(|f| {
                        let mut b = Vec::new();
                        d.encode_field(f, &mut b);
                        b
                    })
                    .collect();
                snap.push(fields);
            }
        });
        snap
    }
}

/// Encodes every field of every dataset.
pub(crate) fn encode_datasets(cell: &Arc<dyn ErasedCell>) -> Vec<u8> {
    let snap = cell.snapshot_fields();
    let mut revs = Vec::new();
    cell.with_dyn(&mut |o| {
        for i in 0..o.dataset_count() {
            revs.push(o.dataset(i).map(|d| d.declared_revision()).unwrap_or(0));
        }
    });
    let mut out = Vec::new();
    put_varint(&mut out, snap.len() as u64);
    for (i, fields) in snap.iter().enumerate() {
        let mask = if fields.len() >= 64 {
            u64::MAX
        } else {
            (1u64 << fields.len()) - 1
        };
        let body: Vec<u8> = fields.concat();
        put_varint(&mut out, i as u64);
        out.push(revs.get(i).copied().unwrap_or(0));
        put_varint(&mut out, mask);
        put_varint(&mut out, body.len() as u64);
        out.extend_from_slice(&body);
    }
    out
}

/// Encodes the fields that changed since `snapshot` and refreshes it.
#[allow(clippy::needless_range_loop)]
pub(crate) fn encode_delta(
    cell: &Arc<dyn ErasedCell>,
    snapshot: &mut Vec<Vec<Vec<u8>>>,
) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    let mut count = 0u64;
    let mut entries = Vec::new();
    cell.with_dyn(&mut |o| {
        if snapshot.len() != o.dataset_count() {
            snapshot.resize(o.dataset_count(), Vec::new());
        }
        let mut scratch = Vec::new();
        for i in 0..o.dataset_count() {
            let Some(d) = o.dataset(i) else { continue };
            let n = d.field_names().len().min(crate::object::MAX_DATASET_FIELDS);
            let snap = &mut snapshot[i];
            snap.resize(n, Vec::new());
            let mut mask = 0u64;
            let mut body = Vec::new();
            for (f, slot) in snap.iter_mut().enumerate().take(n) {
                scratch.clear();
                d.encode_field(f, &mut scratch);
                if scratch != *slot {
                    mask |= 1 << f;
                    body.extend_from_slice(&scratch);
                    slot.clear();
                    slot.extend_from_slice(&scratch);
                }
            }
            if mask != 0 {
                count += 1;
                entries.push((i, d.declared_revision(), mask, body));
            }
        }
    });
    if count == 0 {
        return None;
    }
    put_varint(&mut out, count);
    for (i, rev, mask, body) in entries {
        put_varint(&mut out, i as u64);
        out.push(rev);
        put_varint(&mut out, mask);
        put_varint(&mut out, body.len() as u64);
        out.extend_from_slice(&body);
    }
    Some(out)
}

pub(crate) fn peek_revision(data: &[u8]) -> u8 {
    let mut s = data;
    let _ = get_varint(&mut s);
    let _ = get_varint(&mut s);
    s.first().copied().unwrap_or(0)
}

/// Applies a dataset message; `None` if it was malformed.
pub(crate) fn apply_datasets(cell: &Arc<dyn ErasedCell>, data: &[u8]) -> Option<()> {
    let mut ok = Some(());
    cell.with_dyn(&mut |o| ok = apply_to(o, data));
    ok
}

pub(crate) fn apply_to(o: &mut dyn DoDyn, mut s: &[u8]) -> Option<()> {
    let count = get_varint(&mut s)?;
    for _ in 0..count {
        let idx = usize::try_from(get_varint(&mut s)?).ok()?;
        let (&rev, rest) = s.split_first()?;
        s = rest;
        let mask = get_varint(&mut s)?;
        let len = usize::try_from(get_varint(&mut s)?).ok()?;
        if len > s.len() {
            return None;
        }
        let (mut body, rest) = s.split_at(len);
        s = rest;
        // A dataset this build does not know is skipped (VER-3).
        let Some(d) = o.dataset_mut(idx) else {
            continue;
        };
        d.set_received_revision(rev);
        let known = d.field_names().len();
        for f in 0..64usize {
            if mask & (1u64 << f) == 0 {
                continue;
            }
            // Fields this build does not know come last: ignore them.
            if f >= known {
                break;
            }
            d.decode_field(f, &mut body).ok()?;
        }
    }
    Some(())
}

// The dataset values an operation brings in (decoded with this codec).
impl Operation {
    /// The dataset values the operation brings in, as a fresh duplica of
    /// `T` ([`DoClass::new_duplica`]) with the incoming bytes applied: every
    /// field for an AddToStore of a duplica, the changed fields only for an
    /// UpdateDataSet (the others keep `new_duplica`'s values). `None` when the
    /// operation carries no dataset values, concerns another class, or the
    /// bytes do not decode.
    ///
    /// The local object is not touched: a check sees what would be applied
    /// before it is, and can compare it with the store ([`StoreView`]).
    ///
    /// [`DoClass::new_duplica`]: crate::DoClass::new_duplica
    /// [`StoreView`]: crate::pipeline::StoreView
    pub fn incoming<T: crate::object::DoClass>(&self) -> Option<T> {
        if !self.is_a::<T>() {
            return None;
        }
        let Some(Payload::Datasets(bytes)) = &self.payload else {
            return None;
        };
        let mut obj = T::new_duplica();
        apply_to(&mut obj, bytes)?;
        Some(obj)
    }
}

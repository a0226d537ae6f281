//! The dataset codec: full states, deltas, and batches of updates.

use crate::ids::DOHandle;
use crate::object::{DataSet, Delivery, DoDyn, ErasedCell, MAX_DATASET_FIELDS, MAX_QUANTIZED_BITS};
use crate::operation::{Operation, Payload};
use crate::wire::{get_varint, put_varint};
use std::sync::Arc;

// ------------------------------------------------------------ dataset codec
//
// A dataset message is `count` entries of
// `[dataset index][revision u8][field mask varint][byte length][fields]`.
// Fields beyond what the receiver knows come last and are skipped; datasets
// the receiver does not know are skipped by length (VER-3). A full state
// (`Create`) of a class with latest-state datasets is followed by the
// object's latest-state version (a varint), which receivers of older
// builds ignore.
//
// The fields of an entry are encoded in index order: a postcard field
// starts on a byte boundary, a quantized field (`DataSet::field_bits`)
// takes its width in bits, packed right after the quantized field before
// it (least significant bit first).

/// What a class's datasets look like in this build (the same for every
/// object of the class).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Shape {
    pub(crate) datasets: Vec<DsShape>,
}

/// One dataset of a [`Shape`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct DsShape {
    pub(crate) delivery: Delivery,
    pub(crate) revision: u8,
    /// The width of each field in bits when it is quantized.
    pub(crate) bits: Vec<Option<u8>>,
}

impl DsShape {
    fn of(d: &dyn DataSet) -> DsShape {
        let n = d.field_names().len().min(MAX_DATASET_FIELDS);
        DsShape {
            delivery: d.delivery(),
            revision: d.declared_revision(),
            bits: (0..n).map(|f| quantized_bits(d, f)).collect(),
        }
    }

    /// Every field's bit in a mask.
    pub(crate) fn all(&self) -> u64 {
        mask_of(self.bits.len())
    }
}

impl Shape {
    /// The shape of `cell`'s class.
    pub(crate) fn of(cell: &Arc<dyn ErasedCell>) -> Shape {
        let mut datasets = Vec::new();
        cell.with_dyn(&mut |o| {
            datasets = (0..o.dataset_count())
                .map(|i| match o.dataset(i) {
                    Some(d) => DsShape::of(d),
                    None => DsShape {
                        delivery: Delivery::Reliable,
                        revision: 0,
                        bits: Vec::new(),
                    },
                })
                .collect();
        });
        Shape { datasets }
    }

    /// Whether any dataset is latest-state.
    pub(crate) fn has_latest(&self) -> bool {
        self.datasets.iter().any(|d| d.delivery == Delivery::Latest)
    }
}

/// A field's width when it is quantized (a width out of range reads as
/// not quantized: the field then travels as the bytes it encodes to).
fn quantized_bits(d: &dyn DataSet, f: usize) -> Option<u8> {
    d.field_bits(f)
        .filter(|b| (1..=MAX_QUANTIZED_BITS).contains(b))
}

fn mask_of(n: usize) -> u64 {
    if n >= 64 {
        u64::MAX
    } else {
        (1u64 << n) - 1
    }
}

/// Writes fields bit by bit or byte by byte (see the module's comment).
struct BitWriter<'a> {
    out: &'a mut Vec<u8>,
    acc: u64,
    n: u32,
}

impl<'a> BitWriter<'a> {
    fn new(out: &'a mut Vec<u8>) -> Self {
        BitWriter { out, acc: 0, n: 0 }
    }

    fn bits(&mut self, value: u64, width: u8) {
        let width = u32::from(width.min(MAX_QUANTIZED_BITS));
        self.acc |= (value & ((1u64 << width) - 1)) << self.n;
        self.n += width;
        while self.n >= 8 {
            self.out.push(self.acc as u8);
            self.acc >>= 8;
            self.n -= 8;
        }
    }

    fn align(&mut self) {
        if self.n > 0 {
            self.out.push(self.acc as u8);
            self.acc = 0;
            self.n = 0;
        }
    }

    fn bytes(&mut self, b: &[u8]) {
        self.align();
        self.out.extend_from_slice(b);
    }
}

/// Reads what [`BitWriter`] wrote.
struct BitReader<'a> {
    data: &'a [u8],
    byte: usize,
    bit: u32,
}

impl<'a> BitReader<'a> {
    fn new(data: &'a [u8]) -> Self {
        BitReader {
            data,
            byte: 0,
            bit: 0,
        }
    }

    fn bits(&mut self, width: u8) -> Option<u64> {
        let mut v = 0u64;
        let mut got = 0u32;
        let width = u32::from(width.min(MAX_QUANTIZED_BITS));
        while got < width {
            let b = u64::from(*self.data.get(self.byte)?);
            let take = (8 - self.bit).min(width - got);
            let part = (b >> self.bit) & ((1u64 << take) - 1);
            v |= part << got;
            got += take;
            self.bit += take;
            if self.bit == 8 {
                self.bit = 0;
                self.byte += 1;
            }
        }
        Some(v)
    }

    fn align(&mut self) {
        if self.bit > 0 {
            self.bit = 0;
            self.byte += 1;
        }
    }

    fn rest(&mut self) -> &'a [u8] {
        self.align();
        self.data.get(self.byte..).unwrap_or_default()
    }

    fn advance(&mut self, n: usize) {
        self.byte += n;
    }
}

/// The value of a quantized field from its encoding (little-endian bytes).
fn le_value(bytes: &[u8]) -> u64 {
    let mut le = [0u8; 8];
    let n = bytes.len().min(8);
    le[..n].copy_from_slice(&bytes[..n]);
    u64::from_le_bytes(le)
}

/// Appends the fields of `mask` (their encodings from `field`) in the
/// entry layout.
fn write_fields<'f>(
    out: &mut Vec<u8>,
    bits: &[Option<u8>],
    mask: u64,
    mut field: impl FnMut(usize) -> &'f [u8],
) {
    let mut w = BitWriter::new(out);
    for (f, b) in bits.iter().enumerate().take(64) {
        if mask & (1u64 << f) == 0 {
            continue;
        }
        match *b {
            Some(width) => w.bits(le_value(field(f)), width),
            None => w.bytes(field(f)),
        }
    }
    w.align();
}

/// Decodes the fields of `mask` from an entry's bytes into `d`; fields
/// this build does not know come last and are ignored.
fn read_fields(d: &mut dyn DataSet, mask: u64, body: &[u8]) -> Option<()> {
    let known = d.field_names().len().min(MAX_DATASET_FIELDS);
    let mut r = BitReader::new(body);
    for f in 0..64usize {
        if mask & (1u64 << f) == 0 {
            continue;
        }
        if f >= known {
            break;
        }
        match quantized_bits(d, f) {
            Some(width) => {
                let v = r.bits(width)?;
                let n = usize::from(width).div_ceil(8);
                let le = v.to_le_bytes();
                let mut s = &le[..n];
                d.decode_field(f, &mut s).ok()?;
            }
            None => {
                let mut s = r.rest();
                let before = s.len();
                d.decode_field(f, &mut s).ok()?;
                r.advance(before - s.len());
            }
        }
    }
    Some(())
}

pub(crate) trait CellExt {
    fn snapshot_fields(&self) -> Vec<Vec<Vec<u8>>>;
}

impl CellExt for Arc<dyn ErasedCell> {
    fn snapshot_fields(&self) -> Vec<Vec<Vec<u8>>> {
        let mut snap = Vec::new();
        self.with_dyn(&mut |o| {
            for i in 0..o.dataset_count() {
                let Some(d) = o.dataset(i) else { continue };
                let fields = (0..d.field_names().len().min(MAX_DATASET_FIELDS))
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

fn put_entry(out: &mut Vec<u8>, index: usize, revision: u8, mask: u64, body: &[u8]) {
    put_varint(out, index as u64);
    out.push(revision);
    put_varint(out, mask);
    put_varint(out, body.len() as u64);
    out.extend_from_slice(body);
}

/// Encodes every field of every dataset, followed by `version` (the
/// object's latest-state version) when there is one.
pub(crate) fn encode_datasets_versioned(
    cell: &Arc<dyn ErasedCell>,
    version: Option<u64>,
) -> Vec<u8> {
    let mut out = Vec::new();
    cell.with_dyn(&mut |o| {
        put_varint(&mut out, o.dataset_count() as u64);
        let mut body = Vec::new();
        let mut scratch: Vec<Vec<u8>> = Vec::new();
        for i in 0..o.dataset_count() {
            let Some(d) = o.dataset(i) else {
                put_entry(&mut out, i, 0, 0, &[]);
                continue;
            };
            let shape = DsShape::of(d);
            scratch.clear();
            scratch.extend((0..shape.bits.len()).map(|f| {
                let mut b = Vec::new();
                d.encode_field(f, &mut b);
                b
            }));
            body.clear();
            write_fields(&mut body, &shape.bits, shape.all(), |f| &scratch[f]);
            put_entry(&mut out, i, shape.revision, shape.all(), &body);
        }
    });
    if let Some(v) = version {
        put_varint(&mut out, v);
    }
    out
}

/// Encodes every field of every dataset.
pub(crate) fn encode_datasets(cell: &Arc<dyn ErasedCell>) -> Vec<u8> {
    encode_datasets_versioned(cell, None)
}

/// Compares every field with `snapshot`, refreshes it, and returns the
/// changed fields of each dataset (`None` when nothing changed).
pub(crate) fn diff(
    cell: &Arc<dyn ErasedCell>,
    snapshot: &mut Vec<Vec<Vec<u8>>>,
) -> Option<Vec<u64>> {
    let mut masks = Vec::new();
    let mut any = false;
    cell.with_dyn(&mut |o| {
        if snapshot.len() != o.dataset_count() {
            snapshot.resize(o.dataset_count(), Vec::new());
        }
        let mut scratch = Vec::new();
        masks.resize(o.dataset_count(), 0);
        for i in 0..o.dataset_count() {
            let Some(d) = o.dataset(i) else { continue };
            let n = d.field_names().len().min(MAX_DATASET_FIELDS);
            let snap = &mut snapshot[i];
            snap.resize(n, Vec::new());
            let mut mask = 0u64;
            for (f, slot) in snap.iter_mut().enumerate().take(n) {
                scratch.clear();
                d.encode_field(f, &mut scratch);
                if scratch != *slot {
                    mask |= 1 << f;
                    slot.clear();
                    slot.extend_from_slice(&scratch);
                }
            }
            masks[i] = mask;
            any |= mask != 0;
        }
    });
    any.then_some(masks)
}

/// The fields of `mask` of dataset `index`, from the snapshot, in the
/// entry layout.
pub(crate) fn snapshot_body(
    snapshot: &[Vec<Vec<u8>>],
    shape: &Shape,
    index: usize,
    mask: u64,
    out: &mut Vec<u8>,
) {
    let (Some(ds), Some(snap)) = (shape.datasets.get(index), snapshot.get(index)) else {
        return;
    };
    let mask = mask & ds.all() & mask_of(snap.len());
    write_fields(out, &ds.bits, mask, |f| snap[f].as_slice());
}

/// A dataset message (the entry layout) of the fields `masks` gives per
/// dataset, from the snapshot; `None` when no mask has a field.
pub(crate) fn encode_from_snapshot(
    snapshot: &[Vec<Vec<u8>>],
    shape: &Shape,
    masks: &[u64],
) -> Option<Vec<u8>> {
    let count = masks.iter().filter(|m| **m != 0).count();
    if count == 0 {
        return None;
    }
    let mut out = Vec::new();
    put_varint(&mut out, count as u64);
    let mut body = Vec::new();
    for (i, &m) in masks.iter().enumerate() {
        if m == 0 {
            continue;
        }
        body.clear();
        snapshot_body(snapshot, shape, i, m, &mut body);
        let rev = shape.datasets.get(i).map_or(0, |d| d.revision);
        put_entry(&mut out, i, rev, m, &body);
    }
    Some(out)
}

pub(crate) fn peek_revision(data: &[u8]) -> u8 {
    let mut s = data;
    let _ = get_varint(&mut s);
    let _ = get_varint(&mut s);
    s.first().copied().unwrap_or(0)
}

/// The latest-state version after the entries of a full state, if any.
pub(crate) fn trailing_version(data: &[u8]) -> Option<u64> {
    let mut s = data;
    let count = get_varint(&mut s)?;
    for _ in 0..count {
        get_varint(&mut s)?;
        s = s.get(1..)?;
        get_varint(&mut s)?;
        let len = usize::try_from(get_varint(&mut s)?).ok()?;
        s = s.get(len..)?;
    }
    if s.is_empty() {
        return None;
    }
    get_varint(&mut s)
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
        let (body, rest) = s.split_at(len);
        s = rest;
        // A dataset this build does not know is skipped (VER-3).
        let Some(d) = o.dataset_mut(idx) else {
            continue;
        };
        d.set_received_revision(rev);
        read_fields(d, mask, body)?;
    }
    Some(())
}

// ------------------------------------------------------------ batches
//
// A batch carries the updates of many objects for one station, with one
// header and no per-update envelope:
//
// batch   := [base version varint, latest-state batches only] section*
// section := [class id u8][byte length varint] [datasets n varint]
//            [revision u8 x n] item*
// item    := [head varint] [version: base - version, varint, unless the
//            same as the item before] [shape, unless the same as the item
//            before] [fields length varint, unless the same as the item
//            before] [fields]
// head    := (handle delta << 3) | same version << 2 | same shape << 1 |
//            same length
// shape   := [datasets in the item varint] ([index delta varint]
//            [field mask varint])*
// fields  := per dataset of the shape, in order: [byte length varint,
//            except for the last] [its fields in the entry layout]
//
// Sections are in ascending class order and items in ascending handle
// order: the first item of a section gives its handle's low 56 bits, the
// others the difference to the item before. A class the receiver does not
// know is skipped by the section's length; the rest follows VER-3 as
// dataset messages do (the revision of each dataset comes from its
// section).

/// One object's update, ready to go in a batch.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Item {
    /// The shape bytes (datasets and their field masks).
    pub(crate) shape: Vec<u8>,
    /// The fields part.
    pub(crate) fields: Vec<u8>,
}

impl Item {
    /// The update of the fields `masks` gives per dataset, from the
    /// snapshot; `None` when no mask has a field.
    pub(crate) fn from_snapshot(
        snapshot: &[Vec<Vec<u8>>],
        shape: &Shape,
        masks: &[u64],
    ) -> Option<Item> {
        let present: Vec<usize> = (0..masks.len()).filter(|i| masks[*i] != 0).collect();
        let last = *present.last()?;
        let mut item = Item::default();
        put_varint(&mut item.shape, present.len() as u64);
        let mut prev = 0usize;
        let mut body = Vec::new();
        for (k, &i) in present.iter().enumerate() {
            put_varint(
                &mut item.shape,
                (i - if k == 0 { 0 } else { prev + 1 }) as u64,
            );
            put_varint(&mut item.shape, masks[i]);
            prev = i;
            body.clear();
            snapshot_body(snapshot, shape, i, masks[i], &mut body);
            if i != last {
                put_varint(&mut item.fields, body.len() as u64);
            }
            item.fields.extend_from_slice(&body);
        }
        Some(item)
    }

    /// The item of decoded parts (in ascending dataset order), as they were.
    pub(crate) fn raw(parts: &[Part<'_>]) -> Item {
        let mut item = Item::default();
        put_varint(&mut item.shape, parts.len() as u64);
        let mut prev = None;
        for (k, p) in parts.iter().enumerate() {
            let step = match prev {
                None => p.index,
                Some(q) => p.index.saturating_sub(q + 1),
            };
            put_varint(&mut item.shape, step as u64);
            put_varint(&mut item.shape, p.mask);
            prev = Some(p.index);
            if k + 1 != parts.len() {
                put_varint(&mut item.fields, p.body.len() as u64);
            }
            item.fields.extend_from_slice(p.body);
        }
        item
    }

    /// The most bytes this item takes in a batch.
    pub(crate) fn max_len(&self) -> usize {
        // Head (a handle delta of up to 56 bits), version, shape, length.
        9 + 5 + self.shape.len() + 5 + self.fields.len()
    }
}

const LOW56: u64 = (1 << 56) - 1;

/// Builds a batch.
pub(crate) struct BatchWriter {
    out: Vec<u8>,
    latest: bool,
    base: u64,
    section: Vec<u8>,
    class: Option<u8>,
    prev: u64,
    prev_version: u64,
    prev_shape: Vec<u8>,
    prev_len: Option<usize>,
    items: usize,
}

impl BatchWriter {
    /// A reliable batch.
    pub(crate) fn reliable() -> BatchWriter {
        Self::new(false, 0)
    }

    /// A latest-state batch whose versions are at most `base`.
    pub(crate) fn latest(base: u64) -> BatchWriter {
        Self::new(true, base)
    }

    fn new(latest: bool, base: u64) -> BatchWriter {
        let mut out = Vec::new();
        if latest {
            put_varint(&mut out, base);
        }
        BatchWriter {
            out,
            latest,
            base,
            section: Vec::new(),
            class: None,
            prev: 0,
            prev_version: base,
            prev_shape: Vec::new(),
            prev_len: None,
            items: 0,
        }
    }

    /// How many items it holds.
    pub(crate) fn len(&self) -> usize {
        self.items
    }

    /// Its size so far, about.
    pub(crate) fn size(&self) -> usize {
        self.out.len() + self.section.len() + 6
    }

    fn close_section(&mut self) {
        if let Some(class) = self.class.take() {
            self.out.push(class);
            put_varint(&mut self.out, self.section.len() as u64);
            self.out.append(&mut self.section);
        }
    }

    /// Adds the item of `handle` (after every item of a lower handle) at
    /// `version` (latest-state batches), whose class has `shape`.
    pub(crate) fn push(&mut self, handle: DOHandle, version: u64, shape: &Shape, item: &Item) {
        let class = handle.class_id().0;
        let first = self.class != Some(class);
        if first {
            self.close_section();
            self.class = Some(class);
            put_varint(&mut self.section, shape.datasets.len() as u64);
            self.section
                .extend(shape.datasets.iter().map(|d| d.revision));
            self.prev_shape.clear();
            self.prev_len = None;
            self.prev_version = self.base;
        }
        let delta = if first {
            handle.0 & LOW56
        } else {
            handle.0.wrapping_sub(self.prev) & LOW56
        };
        self.prev = handle.0;
        let same_version = !self.latest || version == self.prev_version;
        let same_shape = !first && item.shape == self.prev_shape;
        let same_len = self.prev_len == Some(item.fields.len());
        let head = (delta << 3)
            | (u64::from(same_version) << 2)
            | (u64::from(same_shape) << 1)
            | u64::from(same_len);
        put_varint(&mut self.section, head);
        if !same_version {
            put_varint(&mut self.section, self.base.saturating_sub(version));
            self.prev_version = version;
        }
        if !same_shape {
            self.section.extend_from_slice(&item.shape);
            self.prev_shape.clear();
            self.prev_shape.extend_from_slice(&item.shape);
        }
        if !same_len {
            put_varint(&mut self.section, item.fields.len() as u64);
            self.prev_len = Some(item.fields.len());
        }
        self.section.extend_from_slice(&item.fields);
        self.items += 1;
    }

    /// The batch's bytes.
    pub(crate) fn finish(mut self) -> Vec<u8> {
        self.close_section();
        self.out
    }
}

/// One dataset of a decoded item.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Part<'a> {
    pub(crate) index: usize,
    pub(crate) revision: u8,
    pub(crate) mask: u64,
    pub(crate) body: &'a [u8],
}

/// One object's update decoded from a batch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct BatchItem<'a> {
    pub(crate) handle: DOHandle,
    /// Its latest-state version (0 in a reliable batch).
    pub(crate) version: u64,
    pub(crate) parts: Vec<Part<'a>>,
}

impl BatchItem<'_> {
    /// The update as a dataset message of its parts that `keep` accepts.
    pub(crate) fn message(&self, mut keep: impl FnMut(&Part<'_>) -> bool) -> Option<Vec<u8>> {
        let parts: Vec<&Part<'_>> = self.parts.iter().filter(|p| keep(p)).collect();
        if parts.is_empty() {
            return None;
        }
        let mut out = Vec::with_capacity(8 + parts.iter().map(|p| p.body.len() + 8).sum::<usize>());
        put_varint(&mut out, parts.len() as u64);
        for p in parts {
            put_entry(&mut out, p.index, p.revision, p.mask, p.body);
        }
        Some(out)
    }
}

/// A decoded batch: its items, and the sections of classes skipped.
#[derive(Debug, Default)]
pub(crate) struct Batch<'a> {
    pub(crate) items: Vec<BatchItem<'a>>,
    /// Whether something did not decode (what came before it is kept).
    pub(crate) malformed: bool,
}

/// Decodes a batch (latest-state when `latest`); `known` says whether this
/// build knows a class id (the sections of others are skipped).
pub(crate) fn decode_batch(data: &[u8], latest: bool, known: impl Fn(u8) -> bool) -> Batch<'_> {
    let mut batch = Batch::default();
    let mut s = data;
    let base = if latest {
        match get_varint(&mut s) {
            Some(b) => b,
            None => {
                batch.malformed = true;
                return batch;
            }
        }
    } else {
        0
    };
    let mut last_class: Option<u8> = None;
    while !s.is_empty() {
        let class = s[0];
        s = &s[1..];
        let Some(len) = get_varint(&mut s).and_then(|l| usize::try_from(l).ok()) else {
            batch.malformed = true;
            return batch;
        };
        if len > s.len() || last_class.is_some_and(|c| c >= class) {
            batch.malformed = true;
            return batch;
        }
        last_class = Some(class);
        let (section, rest) = s.split_at(len);
        s = rest;
        if !known(class) {
            continue;
        }
        if decode_section(section, class, latest, base, &mut batch.items).is_none() {
            batch.malformed = true;
            return batch;
        }
    }
    batch
}

fn decode_section<'a>(
    mut s: &'a [u8],
    class: u8,
    latest: bool,
    base: u64,
    items: &mut Vec<BatchItem<'a>>,
) -> Option<()> {
    let n = usize::try_from(get_varint(&mut s)?).ok()?;
    if n > s.len() {
        return None;
    }
    let (revisions, rest) = s.split_at(n);
    s = rest;
    let mut prev: Option<u64> = None;
    let mut version = base;
    let mut shape: Vec<(usize, u64)> = Vec::new();
    let mut len: Option<usize> = None;
    while !s.is_empty() {
        let head = get_varint(&mut s)?;
        let delta = head >> 3;
        let handle = match prev {
            None => (u64::from(class) << 56) | (delta & LOW56),
            Some(p) => {
                if delta == 0 {
                    return None;
                }
                let h = p.checked_add(delta)?;
                if h >> 56 != u64::from(class) {
                    return None;
                }
                h
            }
        };
        prev = Some(handle);
        if head & 4 == 0 {
            if !latest {
                return None;
            }
            version = base.checked_sub(get_varint(&mut s)?)?;
        }
        if head & 2 == 0 {
            shape.clear();
            let count = usize::try_from(get_varint(&mut s)?).ok()?;
            if count == 0 || count > n || count > s.len() {
                return None;
            }
            let mut index = 0usize;
            for k in 0..count {
                let step = usize::try_from(get_varint(&mut s)?).ok()?;
                index = if k == 0 {
                    step
                } else {
                    index.checked_add(step + 1)?
                };
                if index >= n {
                    return None;
                }
                shape.push((index, get_varint(&mut s)?));
            }
        } else if shape.is_empty() {
            return None;
        }
        if head & 1 == 0 {
            len = Some(usize::try_from(get_varint(&mut s)?).ok()?);
        }
        let l = len?;
        if l > s.len() {
            return None;
        }
        let (mut fields, rest) = s.split_at(l);
        s = rest;
        let mut parts = Vec::with_capacity(shape.len());
        for (k, &(index, mask)) in shape.iter().enumerate() {
            let body = if k + 1 == shape.len() {
                std::mem::take(&mut fields)
            } else {
                let bl = usize::try_from(get_varint(&mut fields)?).ok()?;
                if bl > fields.len() {
                    return None;
                }
                let (b, r) = fields.split_at(bl);
                fields = r;
                b
            };
            parts.push(Part {
                index,
                revision: revisions[index],
                mask,
                body,
            });
        }
        items.push(BatchItem {
            handle: DOHandle(handle),
            version,
            parts,
        });
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bits_round_trip_between_byte_fields() {
        let mut out = Vec::new();
        let mut w = BitWriter::new(&mut out);
        w.bits(0b101, 3);
        w.bits(0x3FF, 10);
        w.bytes(&[0xAA, 0xBB]);
        w.bits(1, 1);
        w.bits(0xFFFF_FFFF, 32);
        w.align();
        // 13 bits, 2 bytes, 33 bits.
        assert_eq!(out.len(), 2 + 2 + 5);
        let mut r = BitReader::new(&out);
        assert_eq!(r.bits(3), Some(0b101));
        assert_eq!(r.bits(10), Some(0x3FF));
        let rest = r.rest();
        assert_eq!(&rest[..2], &[0xAA, 0xBB]);
        r.advance(2);
        assert_eq!(r.bits(1), Some(1));
        assert_eq!(r.bits(32), Some(0xFFFF_FFFF));
        assert_eq!(r.bits(8), None);
    }

    fn shape(n: usize, revs: &[u8]) -> Shape {
        Shape {
            datasets: revs
                .iter()
                .map(|&r| DsShape {
                    delivery: Delivery::Reliable,
                    revision: r,
                    bits: vec![None; n],
                })
                .collect(),
        }
    }

    #[test]
    fn a_batch_decodes_to_what_was_pushed() {
        let sh = shape(3, &[0, 2]);
        let snap = vec![
            vec![vec![1u8], vec![2, 2], vec![3, 3, 3]],
            vec![vec![4u8], vec![5], vec![6]],
        ];
        let a = Item::from_snapshot(&snap, &sh, &[0b111, 0]).unwrap();
        let b = Item::from_snapshot(&snap, &sh, &[0b010, 0b101]).unwrap();
        let other = Shape::default();
        for latest in [false, true] {
            let mut w = if latest {
                BatchWriter::latest(100)
            } else {
                BatchWriter::reliable()
            };
            let h = |class: u8, serial: u32| {
                DOHandle::new(crate::ClassId(class), crate::StationId(3), serial)
            };
            w.push(h(100, 1), 100, &sh, &a);
            w.push(h(100, 2), 100, &sh, &a);
            w.push(h(100, 9), 97, &sh, &b);
            w.push(h(101, 1), 97, &other, &a);
            w.push(h(102, 5), 1, &sh, &b);
            assert_eq!(w.len(), 5);
            let bytes = w.finish();
            let batch = decode_batch(&bytes, latest, |c| c != 101);
            assert!(!batch.malformed);
            let got: Vec<(DOHandle, u64, usize)> = batch
                .items
                .iter()
                .map(|i| (i.handle, i.version, i.parts.len()))
                .collect();
            let v = |x: u64| if latest { x } else { 0 };
            assert_eq!(
                got,
                vec![
                    (h(100, 1), v(100), 1),
                    (h(100, 2), v(100), 1),
                    (h(100, 9), v(97), 2),
                    (h(102, 5), v(1), 2),
                ]
            );
            let third = &batch.items[2];
            assert_eq!(third.parts[0].body, &[2, 2]);
            assert_eq!((third.parts[1].index, third.parts[1].revision), (1, 2));
            assert_eq!(third.parts[1].body, &[4, 6]);
            // Back as a dataset message, as `Update` carries it.
            let msg = third.message(|_| true).unwrap();
            let expected = encode_from_snapshot(&snap, &sh, &[0b010, 0b101]).unwrap();
            assert_eq!(msg, expected);
            // Consecutive items of one shape cost a head byte and their fields.
            let mut one = BatchWriter::reliable();
            one.push(h(100, 1), 0, &sh, &a);
            let size1 = one.finish().len();
            let mut two = BatchWriter::reliable();
            two.push(h(100, 1), 0, &sh, &a);
            two.push(h(100, 2), 0, &sh, &a);
            assert_eq!(two.finish().len(), size1 + 1 + a.fields.len());
        }
    }

    #[test]
    fn garbage_batches_never_panic() {
        let sh = shape(2, &[0]);
        let snap = vec![vec![vec![1u8, 2], vec![3u8]]];
        let a = Item::from_snapshot(&snap, &sh, &[0b11]).unwrap();
        let mut w = BatchWriter::latest(7);
        for s in 1..20 {
            w.push(
                DOHandle::new(crate::ClassId(120), crate::StationId(1), s),
                7 - (s as u64 % 3),
                &sh,
                &a,
            );
        }
        let good = w.finish();
        let mut x = 0x1234_5678u64;
        for _ in 0..5000 {
            let mut bytes = good.clone();
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let i = (x as usize) % bytes.len();
            bytes[i] ^= (x >> 32) as u8 | 1;
            if x % 5 == 0 {
                bytes.truncate(i);
            }
            for latest in [true, false] {
                let b = decode_batch(&bytes, latest, |_| true);
                assert!(b.items.len() <= bytes.len());
                for item in &b.items {
                    let _ = item.message(|_| true);
                }
            }
        }
    }
}

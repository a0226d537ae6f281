//! The frames of a link packet: decoding and encoding.

use super::*;

/// A decoded frame borrowing from the packet.
pub(super) enum Frame<'a> {
    Ping,
    Ack(AckFrame<'a>),
    Reliable {
        substream: u8,
        seq: u64,
        last: bool,
        data: &'a [u8],
    },
    Unreliable(&'a [u8]),
    UnreliableFragment {
        id: u64,
        index: u32,
        count: u32,
        data: &'a [u8],
    },
}

/// An ACK frame whose ranges were validated while decoding.
pub(super) struct AckFrame<'a> {
    pub(super) largest: u64,
    pub(super) delay_micros: u64,
    pub(super) first_range: u64,
    pub(super) range_count: u64,
    pub(super) ranges: &'a [u8],
}

impl AckFrame<'_> {
    /// Acknowledged ranges `(smallest, largest)`, highest first.
    pub(super) fn for_each_range(&self, mut f: impl FnMut(u64, u64)) {
        let mut low = self.largest - self.first_range;
        f(low, self.largest);
        let mut r = Reader::new(self.ranges);
        for _ in 0..self.range_count {
            let (Ok(gap), Ok(len)) = (r.varint(), r.varint()) else {
                return;
            };
            let Some(high) = low.checked_sub(gap).and_then(|x| x.checked_sub(2)) else {
                return;
            };
            let Some(l) = high.checked_sub(len) else {
                return;
            };
            low = l;
            f(low, high);
        }
    }
}

pub(super) fn read_frame<'a>(r: &mut Reader<'a>) -> Result<Frame<'a>, PacketError> {
    let kind = r.u8()?;
    match kind {
        FRAME_PING => Ok(Frame::Ping),
        FRAME_ACK => {
            let largest = r.varint()?;
            let delay_micros = r.varint()?;
            let range_count = r.varint()?;
            let first_range = r.varint()?;
            let mut low = largest
                .checked_sub(first_range)
                .ok_or(PacketError::Malformed("ack range below zero"))?;
            let start = r.rest();
            // Each range consumes at least two bytes, so this loop is bounded by the packet.
            for _ in 0..range_count {
                let gap = r.varint()?;
                let len = r.varint()?;
                let high = low
                    .checked_sub(gap)
                    .and_then(|x| x.checked_sub(2))
                    .ok_or(PacketError::Malformed("ack range below zero"))?;
                low = high
                    .checked_sub(len)
                    .ok_or(PacketError::Malformed("ack range below zero"))?;
            }
            let consumed = start.len() - r.remaining();
            Ok(Frame::Ack(AckFrame {
                largest,
                delay_micros,
                first_range,
                range_count,
                ranges: &start[..consumed],
            }))
        }
        FRAME_RELIABLE => {
            let substream = r.u8()?;
            let seq = r.varint()?;
            let len_flag = r.varint()?;
            let len = usize::try_from(len_flag >> 1).map_err(|_| PacketError::Truncated)?;
            let data = r.bytes(len)?;
            Ok(Frame::Reliable {
                substream,
                seq,
                last: len_flag & 1 == 1,
                data,
            })
        }
        FRAME_UNRELIABLE => {
            let len = r.length()?;
            Ok(Frame::Unreliable(r.bytes(len)?))
        }
        FRAME_UNRELIABLE_FRAGMENT => {
            let id = r.varint()?;
            let index = r.varint_u32()?;
            let count = r.varint_u32()?;
            let len = r.length()?;
            let data = r.bytes(len)?;
            if index >= count {
                return Err(PacketError::Malformed("fragment index out of range"));
            }
            if data.is_empty() {
                return Err(PacketError::Malformed("empty fragment"));
            }
            Ok(Frame::UnreliableFragment {
                id,
                index,
                count,
                data,
            })
        }
        other => Err(PacketError::UnknownFrame(other)),
    }
}

pub(super) fn write_segment(buf: &mut Vec<u8>, substream: u8, seq: u64, data: &[u8], last: bool) {
    buf.push(FRAME_RELIABLE);
    buf.push(substream);
    write_varint(buf, seq);
    write_varint(buf, ((data.len() as u64) << 1) | u64::from(last));
    buf.extend_from_slice(data);
}

pub(super) fn segment_len(seq: u64, len: usize) -> usize {
    2 + varint_len(seq) + varint_len(((len as u64) << 1) | 1) + len
}

/// Outcome of the validation pass over an incoming packet.
pub(super) enum Check {
    Duplicate,
    Accept { pn: u64, eliciting: bool },
    OverBudget,
}

//! Reliability state for one peer: packet numbering, acknowledgements, loss
//! detection, retransmission, fragmentation and reassembly.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use super::codec::{varint_len, write_varint, Reader, MAX_VARINT_LEN};
use super::congestion::Congestion;
use super::{Channel, Delivered, LinkStats, PacketError, PacketHeader, SendError, TransportConfig};
use crate::Instant;

const FRAME_PING: u8 = 0x01;
const FRAME_ACK: u8 = 0x02;
const FRAME_RELIABLE: u8 = 0x03;
const FRAME_UNRELIABLE: u8 = 0x04;
const FRAME_UNRELIABLE_FRAGMENT: u8 = 0x05;

/// A packet is lost once a packet sent this many packet numbers later is acknowledged.
const PACKET_THRESHOLD: u64 = 3;
/// Received packet-number ranges remembered for acknowledgement and duplicate detection.
const MAX_RECV_RANGES: usize = 64;
/// Ranges reported in one ACK frame.
const MAX_ACK_RANGES: usize = 32;
/// Worst-case framing of a reliable segment: type, sub-stream, seq, length/flag.
const SEGMENT_OVERHEAD: usize = 1 + 1 + MAX_VARINT_LEN + 5;
/// Worst-case framing of an unreliable fragment: type, id, index, count, length.
const FRAGMENT_OVERHEAD: usize = 1 + MAX_VARINT_LEN + 5 + 5 + 5;
/// Budget charged per buffered out-of-order segment on top of its data.
const BUFFERED_SEGMENT_COST: usize = 64;
/// A large message is split to fill the rest of a packet only if at least this much fits.
const MIN_FRAGMENT_FILL: usize = 64;
/// Partially received unreliable messages kept at once.
const MAX_UNRELIABLE_PARTIALS: usize = 8;
/// A partial unreliable message older than this many message ids is abandoned.
const UNRELIABLE_ID_WINDOW: u64 = 64;
/// Largest packet number accepted; keeps all packet-number arithmetic far from overflow.
const MAX_PACKET_NUMBER: u64 = 1 << 62;
/// Cap on the exponential backoff exponent.
const MAX_BACKOFF: u32 = 16;

/// Reliability state for one peer.
///
/// A `Link` is a pure state machine: feed it the link payload of incoming
/// datagrams with [`handle_packet`](Link::handle_packet), drain outgoing packets
/// with [`poll_packet`](Link::poll_packet), and call
/// [`handle_timeout`](Link::handle_timeout) at the instant returned by
/// [`poll_timeout`](Link::poll_timeout).
///
/// # Congestion control
///
/// With [`TransportConfig::congestion_control`] (the default), reliable
/// data (new and sent again) goes out only while the bytes of
/// ack-eliciting packets in flight are below the congestion window
/// (NewReno, RFC 9002: slow start from [`TransportConfig::initial_window`],
/// congestion avoidance, one reduction per recovery period, the minimum of
/// two datagrams after persistent congestion), and paced: a token bucket
/// filled at 5/4 of `cwnd / srtt` lets a burst of a quarter window go at
/// once. A paced link reports when it may send next in
/// [`poll_timeout`](Link::poll_timeout). The send window
/// ([`TransportConfig::max_unacked_packets`]) stays an upper bound.
/// Acknowledgements, heartbeats and unreliable messages are not held back.
/// What was lost waits in a retransmission backlog, bounded by the
/// unacknowledged segments (each is queued at most once), and is sent
/// within the window too. The figures are in [`LinkStats`].
#[derive(Debug)]
pub struct Link {
    config: Arc<TransportConfig>,
    /// Largest reliable segment payload; any segment fits in an empty packet.
    max_segment: usize,
    /// Largest unreliable fragment payload.
    max_fragment: usize,

    // --- sending ---
    next_pn: u64,
    /// Ack-eliciting packets not yet removed, in packet-number order.
    sent: VecDeque<SentPacket>,
    /// Reliable segments carried by the packets in `sent`, in the same order.
    sent_frames: VecDeque<FrameRef>,
    /// Global index of `sent_frames[0]`.
    sent_frames_base: u64,
    /// Global index of the next frame pushed to `sent_frames`.
    sent_frames_next: u64,
    in_flight: usize,
    send_streams: Vec<SendStream>,
    retransmit: VecDeque<FrameRef>,
    round_robin: usize,
    unreliable_queue: VecDeque<Vec<u8>>,
    /// Bytes of queued messages not yet cut into packets (reliable and unreliable).
    queued_bytes: usize,
    /// Next fragment index of the front unreliable message, when it is fragmented.
    unreliable_front_fragment: u32,
    next_unreliable_id: u64,
    last_eliciting_sent: Instant,
    largest_acked: Option<u64>,

    congestion: Congestion,

    // --- round trip ---
    srtt: Duration,
    rttvar: Duration,
    backoff: u32,

    // --- receiving ---
    /// Disjoint, non-adjacent, ascending ranges of received packet numbers.
    recv_ranges: VecDeque<(u64, u64)>,
    /// Packet numbers below this are treated as duplicates.
    recv_floor: u64,
    largest_received: Option<u64>,
    largest_received_time: Instant,
    ack_dirty: bool,
    ack_eliciting_pending: u32,
    ack_deadline: Option<Instant>,
    recv_streams: Vec<RecvStream>,
    reassembly_bytes: usize,
    unreliable_partials: Vec<UnreliablePartial>,
    newest_unreliable_id: u64,
    delivered: VecDeque<Delivered>,
    last_received: Instant,

    stats: LinkStats,
}

#[derive(Debug, Clone, Copy)]
struct FrameRef {
    substream: u8,
    seq: u64,
}

#[derive(Debug)]
struct SentPacket {
    pn: u64,
    time_sent: Instant,
    frames_start: u64,
    frames_len: u32,
    /// Bytes of the packet, header included.
    size: u32,
    in_flight: bool,
    /// Whether it left the flight by an acknowledgement (not a loss).
    acked: bool,
    /// If the packet carried an ACK frame: the smallest packet number of its top range.
    ack_top_low: Option<u64>,
}

#[derive(Debug, Default)]
struct SendStream {
    /// Messages not yet completely cut into segments.
    queue: VecDeque<Vec<u8>>,
    /// Bytes of `queue[0]` already cut into segments.
    front_offset: usize,
    next_seq: u64,
    /// Sequence number of `slots[0]`.
    base_seq: u64,
    slots: VecDeque<Slot>,
    /// Messages ever queued on this sub-stream.
    messages_queued: u64,
    /// Messages whose every segment was acknowledged, in order.
    messages_acked: u64,
    /// The acknowledged leading segments of the message `slots[0]` belongs
    /// to, once they left `slots` (kept so the message can be taken back).
    front_partial: Vec<u8>,
}

#[derive(Debug)]
struct Slot {
    data: Vec<u8>,
    last: bool,
    acked: bool,
    queued: bool,
}

#[derive(Debug, Default)]
struct RecvStream {
    next_seq: u64,
    partial: Vec<u8>,
    buffered: BTreeMap<u64, (Vec<u8>, bool)>,
}

#[derive(Debug)]
struct UnreliablePartial {
    id: u64,
    count: u32,
    bytes: usize,
    started: Instant,
    fragments: BTreeMap<u32, Vec<u8>>,
}

/// The packets visited by one pass of loss detection, oldest first.
#[derive(Debug, Default)]
struct LossBatch {
    /// When the newest packet declared lost in this pass was sent.
    newest: Option<Instant>,
    /// When the current run of lost packets (no acknowledged one between) began.
    run_start: Option<Instant>,
    /// The longest span of such a run.
    longest_run: Duration,
}

impl LossBatch {
    /// A packet sent at `time_sent`: declared lost now (`lost_now`), or
    /// earlier, or acknowledged.
    fn visit(&mut self, time_sent: Instant, lost_now: bool, acked: bool) {
        if acked {
            self.run_start = None;
            return;
        }
        if lost_now {
            self.newest = Some(self.newest.map_or(time_sent, |t| t.max(time_sent)));
        }
        let start = *self.run_start.get_or_insert(time_sent);
        self.longest_run = self
            .longest_run
            .max(time_sent.saturating_duration_since(start));
    }
}

/// What a link has to send at some instant.
struct Wants {
    ack_due: bool,
    ping_due: bool,
    has_reliable: bool,
    has_unreliable: bool,
}

/// A decoded frame borrowing from the packet.
enum Frame<'a> {
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
struct AckFrame<'a> {
    largest: u64,
    delay_micros: u64,
    first_range: u64,
    range_count: u64,
    ranges: &'a [u8],
}

impl AckFrame<'_> {
    /// Acknowledged ranges `(smallest, largest)`, highest first.
    fn for_each_range(&self, mut f: impl FnMut(u64, u64)) {
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

fn read_frame<'a>(r: &mut Reader<'a>) -> Result<Frame<'a>, PacketError> {
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

fn write_segment(buf: &mut Vec<u8>, substream: u8, seq: u64, data: &[u8], last: bool) {
    buf.push(FRAME_RELIABLE);
    buf.push(substream);
    write_varint(buf, seq);
    write_varint(buf, ((data.len() as u64) << 1) | u64::from(last));
    buf.extend_from_slice(data);
}

fn segment_len(seq: u64, len: usize) -> usize {
    2 + varint_len(seq) + varint_len(((len as u64) << 1) | 1) + len
}

/// Outcome of the validation pass over an incoming packet.
enum Check {
    Duplicate,
    Accept { pn: u64, eliciting: bool },
    OverBudget,
}

impl Link {
    /// A fresh link created at `now`.
    pub fn new(config: Arc<TransportConfig>, now: Instant) -> Link {
        let room = config
            .max_datagram_size
            .saturating_sub(PacketHeader::MAX_SIZE + MAX_VARINT_LEN);
        let max_segment = room.saturating_sub(SEGMENT_OVERHEAD).max(1);
        let max_fragment = room.saturating_sub(FRAGMENT_OVERHEAD).max(1);
        let substreams = usize::from(config.substreams);
        let mut link = Link {
            max_segment,
            max_fragment,
            next_pn: 0,
            sent: VecDeque::new(),
            sent_frames: VecDeque::new(),
            sent_frames_base: 0,
            sent_frames_next: 0,
            in_flight: 0,
            send_streams: (0..substreams).map(|_| SendStream::default()).collect(),
            retransmit: VecDeque::new(),
            round_robin: 0,
            unreliable_queue: VecDeque::new(),
            queued_bytes: 0,
            unreliable_front_fragment: 0,
            next_unreliable_id: 0,
            last_eliciting_sent: now,
            largest_acked: None,
            congestion: Congestion::new(&config, now),
            srtt: config.initial_rtt,
            rttvar: config.initial_rtt / 2,
            backoff: 0,
            recv_ranges: VecDeque::new(),
            recv_floor: 0,
            largest_received: None,
            largest_received_time: now,
            ack_dirty: false,
            ack_eliciting_pending: 0,
            ack_deadline: None,
            recv_streams: (0..substreams).map(|_| RecvStream::default()).collect(),
            reassembly_bytes: 0,
            unreliable_partials: Vec::new(),
            newest_unreliable_id: 0,
            delivered: VecDeque::new(),
            last_received: now,
            stats: LinkStats::default(),
            config,
        };
        link.refresh_gauges();
        link
    }

    /// A link that only reads what one side of a real link sends: it
    /// accepts acknowledgements of packets it never sent (tools that take
    /// captured traffic apart use it; it must not send).
    pub(crate) fn observer(config: Arc<TransportConfig>, now: Instant) -> Link {
        let mut link = Link::new(config, now);
        link.next_pn = u64::MAX;
        link
    }

    /// The link's configuration.
    pub fn config(&self) -> &Arc<TransportConfig> {
        &self.config
    }

    /// Queue a reliable message on sub-stream `substream` (< `config.substreams`).
    ///
    /// Messages on one sub-stream are delivered exactly once and in order;
    /// messages larger than fit in one datagram are fragmented and reassembled.
    pub fn send_reliable(&mut self, substream: u8, message: &[u8]) -> Result<(), SendError> {
        let stream = self
            .send_streams
            .get_mut(usize::from(substream))
            .ok_or(SendError::BadSubstream(substream))?;
        if message.len() > self.config.max_message_size {
            return Err(SendError::TooLarge {
                size: message.len(),
                max: self.config.max_message_size,
            });
        }
        stream.queue.push_back(message.to_vec());
        stream.messages_queued += 1;
        self.queued_bytes += message.len();
        self.stats.reliable_sent += 1;
        Ok(())
    }

    /// Queue an unreliable message: delivered at most once, maybe never, maybe
    /// out of order. Large messages are fragmented; losing any fragment loses
    /// the whole message.
    pub fn send_unreliable(&mut self, message: &[u8]) -> Result<(), SendError> {
        if message.len() > self.config.max_message_size {
            return Err(SendError::TooLarge {
                size: message.len(),
                max: self.config.max_message_size,
            });
        }
        self.unreliable_queue.push_back(message.to_vec());
        self.queued_bytes += message.len();
        self.stats.unreliable_sent += 1;
        Ok(())
    }

    /// Next message ready for the application.
    pub fn poll_message(&mut self) -> Option<Delivered> {
        self.delivered.pop_front()
    }

    /// When the last valid packet from the peer arrived (creation time if none yet).
    pub fn last_received(&self) -> Instant {
        self.last_received
    }

    /// Smoothed round-trip time estimate.
    pub fn rtt(&self) -> Duration {
        self.srtt
    }

    /// The current retransmission timeout, backoff included.
    pub fn rto(&self) -> Duration {
        let cfg = &self.config;
        let base = self.srtt + (self.rttvar * 4).max(Duration::from_millis(1)) + cfg.max_ack_delay;
        let base = base.clamp(cfg.min_rto, cfg.max_rto.max(cfg.min_rto));
        base.saturating_mul(1u32 << self.backoff.min(MAX_BACKOFF))
            .min(cfg.max_rto.max(cfg.min_rto))
    }

    /// Ack-eliciting packets sent and neither acknowledged nor declared lost.
    pub fn packets_in_flight(&self) -> usize {
        self.in_flight
    }

    /// Reliable messages queued and not yet completely sent once.
    pub fn queued_reliable(&self) -> usize {
        self.send_streams.iter().map(|s| s.queue.len()).sum()
    }

    /// Bytes of queued messages (reliable and unreliable) not yet cut into
    /// packets; reliable data already sent and awaiting acknowledgement is
    /// bounded separately by the send window.
    pub fn queued_bytes(&self) -> usize {
        self.queued_bytes
    }

    #[cfg(test)]
    pub(crate) fn debug_state(&self) -> String {
        let recv: Vec<_> = self
            .recv_streams
            .iter()
            .map(|s| {
                (
                    s.next_seq,
                    s.partial.len(),
                    s.buffered.len(),
                    s.buffered.keys().next().copied(),
                )
            })
            .collect();
        let send: Vec<_> = self
            .send_streams
            .iter()
            .map(|s| (s.base_seq, s.next_seq, s.queue.len(), s.slots.len()))
            .collect();
        format!(
            "reassembly {} recv {:?} send {:?} retransmit {} in_flight {} sent {} rto {:?}",
            self.reassembly_bytes,
            recv,
            send,
            self.retransmit.len(),
            self.in_flight,
            self.sent.len(),
            self.rto()
        )
    }

    /// A mark of every reliable message queued so far: pass it to
    /// [`Link::is_acked_through`] later to learn whether the peer has
    /// received all of them.
    pub fn reliable_mark(&self) -> Vec<u64> {
        self.send_streams
            .iter()
            .map(|s| s.messages_queued)
            .collect()
    }

    /// Whether every reliable message queued before `mark` was taken (see
    /// [`Link::reliable_mark`]) has been acknowledged by the peer.
    pub fn is_acked_through(&self, mark: &[u64]) -> bool {
        self.send_streams
            .iter()
            .zip(mark)
            .all(|(s, m)| s.messages_acked >= *m)
    }

    /// Every reliable message the peer may not have delivered yet, as
    /// `(sub-stream, message)` in queueing order per sub-stream: on each
    /// sub-stream, the first message not completely acknowledged and all
    /// that follow it (the peer holds acknowledged messages back until the
    /// ones before them arrive). The link keeps them: a station uses this
    /// to send them another way when the peer went away, so the peer may
    /// have received some of them.
    pub fn unacked_messages(&self) -> Vec<(u8, Vec<u8>)> {
        let mut out = Vec::new();
        for (k, stream) in self.send_streams.iter().enumerate() {
            let substream = k as u8;
            // `slots[0]` is never acknowledged: everything in `slots` counts.
            let mut current = stream.front_partial.clone();
            for slot in &stream.slots {
                current.extend_from_slice(&slot.data);
                if slot.last {
                    out.push((substream, std::mem::take(&mut current)));
                }
            }
            // A trailing unfinished message is `queue[0]`, which is kept whole.
            for message in &stream.queue {
                out.push((substream, message.clone()));
            }
        }
        out
    }

    /// True when no reliable data is queued or unacknowledged.
    pub fn is_idle(&self) -> bool {
        self.send_streams
            .iter()
            .all(|s| s.queue.is_empty() && s.slots.is_empty())
    }

    /// The link's counters.
    pub fn stats(&self) -> &LinkStats {
        &self.stats
    }

    /// Earliest time [`handle_timeout`](Link::handle_timeout) must be called
    /// (retransmission, delayed ack, heartbeat), or `None`.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let mut t = self.last_eliciting_sent + self.config.heartbeat_interval;
        if let Some(deadline) = self.ack_deadline {
            t = t.min(deadline);
        }
        if let Some(front) = self.sent.front() {
            t = t.min(front.time_sent + self.rto());
        }
        if let Some(paced) = self.congestion.paced_until() {
            if self.window_open() && self.reliable_pending() {
                t = t.min(paced);
            }
        }
        Some(t)
    }

    /// Time passes: declare timed-out packets lost and schedule their data
    /// for retransmission. Delayed acks and heartbeats are then produced by
    /// [`poll_packet`](Link::poll_packet).
    pub fn handle_timeout(&mut self, now: Instant) {
        let rto = self.rto();
        let mut loss = LossBatch::default();
        let mut i = 0;
        while i < self.sent.len() {
            let p = &self.sent[i];
            if p.time_sent + rto > now {
                break;
            }
            let (time_sent, in_flight, acked) = (p.time_sent, p.in_flight, p.acked);
            if in_flight {
                self.declare_lost(i);
            }
            loss.visit(time_sent, in_flight, acked);
            i += 1;
        }
        if loss.newest.is_some() {
            self.backoff = (self.backoff + 1).min(MAX_BACKOFF);
            self.on_loss(now, &loss);
            self.remove_finished();
        }
        self.refresh_gauges();
    }

    /// Packets were declared lost: the congestion window reacts.
    fn on_loss(&mut self, now: Instant, loss: &LossBatch) {
        let Some(newest) = loss.newest else {
            return;
        };
        let persistent =
            self.stats.rtt_samples > 0 && loss.longest_run >= self.persistent_congestion_span();
        self.congestion.on_congestion(now, newest, persistent);
        self.stats.congestion_events = self.congestion.congestion_events;
        self.stats.persistent_congestion = self.congestion.persistent_congestion;
    }

    /// Losing every packet sent over this long is persistent congestion
    /// (RFC 9002, 7.6.1: three probe timeouts).
    fn persistent_congestion_span(&self) -> Duration {
        let cfg = &self.config;
        (self.srtt + (self.rttvar * 4).max(Duration::from_millis(1)) + cfg.max_ack_delay) * 3
    }

    /// Copies the congestion controller's gauges into the counters.
    fn refresh_gauges(&mut self) {
        self.stats.cwnd = self.congestion.window();
        self.stats.bytes_in_flight = self.congestion.bytes_in_flight();
        self.stats.srtt = self.srtt;
        self.stats.rttvar = self.rttvar;
        self.stats.retransmit_backlog = self.retransmit.len() as u64;
    }

    /// What the link would send at `now`.
    fn wants(&self, now: Instant) -> Wants {
        Wants {
            ack_due: self.ack_eliciting_pending > 0 && self.ack_deadline.is_some_and(|d| d <= now),
            ping_due: now >= self.last_eliciting_sent + self.config.heartbeat_interval,
            has_reliable: self.window_open()
                && self.congestion.pacer_open(now)
                && self.reliable_pending(),
            has_unreliable: !self.unreliable_queue.is_empty(),
        }
    }

    /// Whether the send window and the congestion window have room.
    fn window_open(&self) -> bool {
        self.in_flight < self.config.max_unacked_packets && self.congestion.window_open()
    }

    /// Whether reliable data waits to be sent (new or again).
    fn reliable_pending(&self) -> bool {
        !self.retransmit.is_empty() || self.send_streams.iter().any(|s| !s.queue.is_empty())
    }

    /// Whether [`poll_packet`](Link::poll_packet) may produce a packet at
    /// `now` (a cheap test: callers skip idle links before building a
    /// packet header).
    pub fn may_send(&self, now: Instant) -> bool {
        let w = self.wants(now);
        w.ack_due || w.ping_due || w.has_reliable || w.has_unreliable
    }

    /// Append the frames of the next packet to `buf`, which already holds the
    /// packet header, never letting `buf.len()` exceed `max_datagram_size`.
    ///
    /// Returns false, leaving `buf` unchanged, when there is nothing to send
    /// now. Call repeatedly until it returns false.
    ///
    /// Reliable segments are sized so that any of them fits in a packet whose
    /// header is at most [`PacketHeader::MAX_SIZE`] bytes; `buf` should not
    /// hold more than that when this is called.
    pub fn poll_packet(&mut self, now: Instant, buf: &mut Vec<u8>) -> bool {
        let start = buf.len();
        let limit = self.config.max_datagram_size;
        if start + varint_len(self.next_pn) + 1 > limit {
            return false;
        }
        let Wants {
            ping_due,
            has_reliable,
            has_unreliable,
            ..
        } = self.wants(now);
        if !self.may_send(now) {
            return false;
        }

        let pn = self.next_pn;
        write_varint(buf, pn);
        let mut ack_top_low = None;
        if self.ack_dirty {
            ack_top_low = self.write_ack(now, buf, limit);
        }
        let data_limit = if ping_due { limit - 1 } else { limit };
        let frames_start = self.sent_frames_next;
        let mut eliciting = false;
        if has_reliable {
            eliciting |= self.write_retransmits(buf, data_limit);
            eliciting |= self.write_new_reliable(buf, data_limit);
        }
        let wrote_unreliable = has_unreliable && self.write_unreliable(buf, data_limit);
        if ping_due && !eliciting && buf.len() < limit {
            buf.push(FRAME_PING);
            eliciting = true;
            self.stats.pings_sent += 1;
        }
        if ack_top_low.is_none() && !eliciting && !wrote_unreliable {
            buf.truncate(start);
            return false;
        }

        self.next_pn += 1;
        if ack_top_low.is_some() {
            self.ack_dirty = false;
            self.ack_eliciting_pending = 0;
            self.ack_deadline = None;
            if !eliciting && !wrote_unreliable {
                self.stats.ack_only_sent += 1;
            }
        }
        if eliciting {
            let frames_len = (self.sent_frames_next - frames_start) as u32;
            let size = buf.len() as u32;
            self.sent.push_back(SentPacket {
                pn,
                time_sent: now,
                frames_start,
                frames_len,
                size,
                in_flight: true,
                acked: false,
                ack_top_low,
            });
            self.in_flight += 1;
            self.last_eliciting_sent = now;
            self.congestion.on_sent(now, u64::from(size), self.srtt);
            if self.congestion.paced_until().is_some() && self.reliable_pending() {
                self.stats.paced += 1;
            }
        }
        self.stats.packets_sent += 1;
        self.stats.bytes_sent += (buf.len() - start) as u64;
        self.refresh_gauges();
        true
    }

    /// Write an ACK frame if it fits; returns the low end of its top range.
    fn write_ack(&mut self, now: Instant, buf: &mut Vec<u8>, limit: usize) -> Option<u64> {
        let &(top_low, largest) = self.recv_ranges.back()?;
        let delay = (now - self.largest_received_time)
            .as_micros()
            .min(u128::from(u64::MAX)) as u64;
        let first_range = largest - top_low;
        let fixed = 1 + varint_len(largest) + varint_len(delay) + 1 + varint_len(first_range);
        let space = limit.saturating_sub(buf.len());
        if fixed > space {
            return None;
        }
        // Count the further ranges that fit.
        let mut used = fixed;
        let mut count = 0usize;
        let mut low = top_low;
        for &(lo, hi) in self.recv_ranges.iter().rev().skip(1).take(MAX_ACK_RANGES) {
            let n = varint_len(low - hi - 2) + varint_len(hi - lo);
            if used + n > space {
                break;
            }
            used += n;
            count += 1;
            low = lo;
        }
        buf.push(FRAME_ACK);
        write_varint(buf, largest);
        write_varint(buf, delay);
        write_varint(buf, count as u64);
        write_varint(buf, first_range);
        let mut low = top_low;
        for &(lo, hi) in self.recv_ranges.iter().rev().skip(1).take(count) {
            write_varint(buf, low - hi - 2);
            write_varint(buf, hi - lo);
            low = lo;
        }
        Some(top_low)
    }

    fn write_retransmits(&mut self, buf: &mut Vec<u8>, limit: usize) -> bool {
        let mut wrote = false;
        while let Some(&frame) = self.retransmit.front() {
            let stream = &mut self.send_streams[usize::from(frame.substream)];
            let Some(index) = frame.seq.checked_sub(stream.base_seq) else {
                self.retransmit.pop_front();
                continue;
            };
            let Some(slot) = stream.slots.get_mut(index as usize) else {
                self.retransmit.pop_front();
                continue;
            };
            if slot.acked {
                slot.queued = false;
                self.retransmit.pop_front();
                continue;
            }
            if buf.len() + segment_len(frame.seq, slot.data.len()) > limit {
                break;
            }
            write_segment(buf, frame.substream, frame.seq, &slot.data, slot.last);
            slot.queued = false;
            self.retransmit.pop_front();
            self.sent_frames.push_back(frame);
            self.sent_frames_next += 1;
            self.stats.retransmissions += 1;
            wrote = true;
        }
        wrote
    }

    fn write_new_reliable(&mut self, buf: &mut Vec<u8>, limit: usize) -> bool {
        let mut wrote = false;
        let n = self.send_streams.len();
        for k in 0..n {
            let s = (self.round_robin + k) % n;
            let stream = &mut self.send_streams[s];
            while let Some(message) = stream.queue.front() {
                let remaining = message.len() - stream.front_offset;
                let space = limit.saturating_sub(buf.len());
                let seq = stream.next_seq;
                let overhead = 2 + varint_len(seq) + varint_len(((remaining as u64) << 1) | 1);
                let whole_chunk = remaining.min(self.max_segment);
                let chunk = if overhead + whole_chunk <= space {
                    whole_chunk
                } else if remaining > self.max_segment && space >= overhead + MIN_FRAGMENT_FILL {
                    space - overhead
                } else {
                    break;
                };
                let last = stream.front_offset + chunk == message.len();
                self.queued_bytes = self.queued_bytes.saturating_sub(chunk);
                let data = if stream.front_offset == 0 && last {
                    stream.queue.pop_front().unwrap_or_default()
                } else {
                    let data = message[stream.front_offset..stream.front_offset + chunk].to_vec();
                    if last {
                        stream.queue.pop_front();
                        stream.front_offset = 0;
                    } else {
                        stream.front_offset += chunk;
                    }
                    data
                };
                write_segment(buf, s as u8, seq, &data, last);
                stream.slots.push_back(Slot {
                    data,
                    last,
                    acked: false,
                    queued: false,
                });
                stream.next_seq += 1;
                self.sent_frames.push_back(FrameRef {
                    substream: s as u8,
                    seq,
                });
                self.sent_frames_next += 1;
                wrote = true;
            }
        }
        if n > 0 {
            self.round_robin = (self.round_robin + 1) % n;
        }
        wrote
    }

    fn write_unreliable(&mut self, buf: &mut Vec<u8>, limit: usize) -> bool {
        let mut wrote = false;
        while let Some(message) = self.unreliable_queue.front() {
            let space = limit.saturating_sub(buf.len());
            let len = message.len();
            if self.unreliable_front_fragment == 0 {
                let whole = 1 + varint_len(len as u64) + len;
                if whole <= space {
                    buf.push(FRAME_UNRELIABLE);
                    write_varint(buf, len as u64);
                    buf.extend_from_slice(message);
                    self.queued_bytes = self.queued_bytes.saturating_sub(len);
                    self.unreliable_queue.pop_front();
                    wrote = true;
                    continue;
                }
                if len + 1 + MAX_VARINT_LEN <= self.max_fragment + FRAGMENT_OVERHEAD {
                    // Fits whole in the next packet.
                    break;
                }
                self.next_unreliable_id += 1;
            }
            let frag = self.max_fragment;
            let count = len.div_ceil(frag) as u32;
            let index = self.unreliable_front_fragment;
            let from = index as usize * frag;
            let to = (from + frag).min(len);
            let id = self.next_unreliable_id;
            let need = 1
                + varint_len(id)
                + varint_len(u64::from(index))
                + varint_len(u64::from(count))
                + varint_len((to - from) as u64)
                + (to - from);
            if need > space {
                break;
            }
            buf.push(FRAME_UNRELIABLE_FRAGMENT);
            write_varint(buf, id);
            write_varint(buf, u64::from(index));
            write_varint(buf, u64::from(count));
            write_varint(buf, (to - from) as u64);
            buf.extend_from_slice(&message[from..to]);
            wrote = true;
            if index + 1 == count {
                self.queued_bytes = self.queued_bytes.saturating_sub(len);
                self.unreliable_queue.pop_front();
                self.unreliable_front_fragment = 0;
            } else {
                self.unreliable_front_fragment = index + 1;
            }
        }
        wrote
    }

    fn declare_lost(&mut self, index: usize) {
        let p = &mut self.sent[index];
        p.in_flight = false;
        self.in_flight -= 1;
        self.congestion.on_lost(u64::from(p.size));
        self.stats.packets_lost += 1;
        let start = (p.frames_start - self.sent_frames_base) as usize;
        let len = p.frames_len as usize;
        for &frame in self.sent_frames.range(start..start + len) {
            let stream = &mut self.send_streams[usize::from(frame.substream)];
            let Some(i) = frame.seq.checked_sub(stream.base_seq) else {
                continue;
            };
            if let Some(slot) = stream.slots.get_mut(i as usize) {
                if !slot.acked && !slot.queued {
                    slot.queued = true;
                    self.retransmit.push_back(frame);
                }
            }
        }
    }

    fn on_packet_acked(&mut self, index: usize, in_flight_before: u64) {
        let p = &mut self.sent[index];
        p.in_flight = false;
        p.acked = true;
        self.in_flight -= 1;
        self.congestion
            .on_acked(p.time_sent, u64::from(p.size), in_flight_before);
        let ack_top_low = p.ack_top_low;
        let start = (p.frames_start - self.sent_frames_base) as usize;
        let len = p.frames_len as usize;
        for &frame in self.sent_frames.range(start..start + len) {
            let stream = &mut self.send_streams[usize::from(frame.substream)];
            let Some(i) = frame.seq.checked_sub(stream.base_seq) else {
                continue;
            };
            // The data stays until the segment leaves `slots` (see
            // `unacked_messages`).
            if let Some(slot) = stream.slots.get_mut(i as usize) {
                slot.acked = true;
            }
            while stream.slots.front().is_some_and(|s| s.acked) {
                if let Some(slot) = stream.slots.pop_front() {
                    if slot.last {
                        stream.messages_acked += 1;
                        stream.front_partial = Vec::new();
                    } else {
                        stream.front_partial.extend_from_slice(&slot.data);
                    }
                }
                stream.base_seq += 1;
            }
        }
        // The peer has seen our acknowledgement of everything down to
        // `ack_top_low`: older ranges need not be reported any more.
        if let Some(low) = ack_top_low {
            while self.recv_ranges.len() > 1 && self.recv_ranges.front().is_some_and(|r| r.1 < low)
            {
                if let Some((_, hi)) = self.recv_ranges.pop_front() {
                    self.recv_floor = self.recv_floor.max(hi + 1);
                }
            }
        }
    }

    /// Drop finished packets from the front of `sent`.
    fn remove_finished(&mut self) {
        while let Some(p) = self.sent.front() {
            if p.in_flight {
                break;
            }
            let n = p.frames_len as usize;
            self.sent_frames.drain(..n);
            self.sent_frames_base += n as u64;
            self.sent.pop_front();
        }
    }

    fn on_ack(&mut self, now: Instant, ack: &AckFrame<'_>) {
        let in_flight_before = self.congestion.bytes_in_flight();
        let mut newly_acked = false;
        let mut rtt_sample = None;
        let mut ranges = [(0u64, 0u64); MAX_ACK_RANGES + 1];
        let mut n = 0;
        ack.for_each_range(|lo, hi| {
            if n < ranges.len() {
                ranges[n] = (lo, hi);
                n += 1;
            }
        });
        for &(lo, hi) in &ranges[..n] {
            let mut i = self.sent.partition_point(|p| p.pn < lo);
            while i < self.sent.len() && self.sent[i].pn <= hi {
                if self.sent[i].in_flight {
                    if self.sent[i].pn == ack.largest {
                        rtt_sample = Some(now - self.sent[i].time_sent);
                    }
                    self.on_packet_acked(i, in_flight_before);
                    newly_acked = true;
                }
                i += 1;
            }
        }
        if !matches!(self.largest_acked, Some(l) if ack.largest <= l) {
            self.largest_acked = Some(ack.largest);
        }
        if let Some(sample) = rtt_sample {
            self.update_rtt(sample, Duration::from_micros(ack.delay_micros));
        }
        if newly_acked {
            self.backoff = 0;
        }
        // Packet-threshold loss detection.
        if let Some(largest) = self.largest_acked {
            let mut loss = LossBatch::default();
            let mut i = 0;
            while i < self.sent.len() && self.sent[i].pn + PACKET_THRESHOLD <= largest {
                let p = &self.sent[i];
                let (time_sent, in_flight, acked) = (p.time_sent, p.in_flight, p.acked);
                if in_flight {
                    self.declare_lost(i);
                }
                loss.visit(time_sent, in_flight, acked);
                i += 1;
            }
            self.on_loss(now, &loss);
        }
        self.remove_finished();
    }

    fn update_rtt(&mut self, sample: Duration, ack_delay: Duration) {
        let ack_delay = ack_delay.min(self.config.max_ack_delay);
        let sample = if sample > ack_delay {
            sample - ack_delay
        } else {
            sample
        };
        if self.stats.rtt_samples == 0 {
            self.srtt = sample;
            self.rttvar = sample / 2;
        } else {
            let diff = self.srtt.max(sample) - self.srtt.min(sample);
            self.rttvar = (self.rttvar * 3 + diff) / 4;
            self.srtt = (self.srtt * 7 + sample) / 8;
        }
        self.stats.rtt_samples += 1;
    }

    fn is_duplicate(&self, pn: u64) -> bool {
        if pn < self.recv_floor {
            return true;
        }
        let i = self.recv_ranges.partition_point(|r| r.1 < pn);
        self.recv_ranges.get(i).is_some_and(|r| r.0 <= pn)
    }

    fn record_received(&mut self, pn: u64) {
        let ranges = &mut self.recv_ranges;
        match ranges.back_mut() {
            None => ranges.push_back((pn, pn)),
            Some(last) if pn == last.1 + 1 => last.1 = pn,
            Some(last) if pn > last.1 + 1 => ranges.push_back((pn, pn)),
            Some(_) => {
                let i = ranges.partition_point(|r| r.1 < pn);
                if ranges[i].0 <= pn {
                    return;
                }
                let merge_next = pn + 1 == ranges[i].0;
                let merge_prev = i > 0 && ranges[i - 1].1 + 1 == pn;
                match (merge_prev, merge_next) {
                    (true, true) => {
                        ranges[i - 1].1 = ranges[i].1;
                        ranges.remove(i);
                    }
                    (true, false) => ranges[i - 1].1 = pn,
                    (false, true) => ranges[i].0 = pn,
                    (false, false) => ranges.insert(i, (pn, pn)),
                }
            }
        }
        while ranges.len() > MAX_RECV_RANGES {
            if let Some((_, hi)) = ranges.pop_front() {
                self.recv_floor = self.recv_floor.max(hi + 1);
            }
        }
    }

    /// Validation pass: decode every frame without changing any state.
    fn check_packet(&self, payload: &[u8]) -> Result<Check, PacketError> {
        let mut r = Reader::new(payload);
        let pn = r.varint()?;
        if pn > MAX_PACKET_NUMBER {
            return Err(PacketError::Malformed("packet number too large"));
        }
        let mut eliciting = false;
        let mut needed = 0usize;
        while !r.is_empty() {
            match read_frame(&mut r)? {
                Frame::Ping => eliciting = true,
                Frame::Ack(ack) => {
                    if ack.largest >= self.next_pn {
                        return Err(PacketError::Malformed("ack of a packet never sent"));
                    }
                }
                Frame::Reliable {
                    substream,
                    seq,
                    data,
                    ..
                } => {
                    eliciting = true;
                    let stream = self
                        .recv_streams
                        .get(usize::from(substream))
                        .ok_or(PacketError::Malformed("sub-stream out of range"))?;
                    if seq > stream.next_seq && !stream.buffered.contains_key(&seq) {
                        needed = needed.saturating_add(data.len() + BUFFERED_SEGMENT_COST);
                    }
                }
                Frame::Unreliable(_) | Frame::UnreliableFragment { .. } => {}
            }
        }
        if self.is_duplicate(pn) {
            return Ok(Check::Duplicate);
        }
        if needed > 0
            && self.reassembly_bytes.saturating_add(needed) > self.config.max_reassembly_bytes
        {
            return Ok(Check::OverBudget);
        }
        Ok(Check::Accept { pn, eliciting })
    }

    /// Feed the part of a datagram after the [`PacketHeader`] (kind `Link`).
    ///
    /// Malformed packets are rejected as a whole before any state changes;
    /// duplicates are ignored. [`PacketError::ReassemblyLimit`] means the
    /// packet was valid but its out-of-order data could not be buffered: it
    /// is not acknowledged and the peer will send the data again.
    pub fn handle_packet(&mut self, now: Instant, payload: &[u8]) -> Result<(), PacketError> {
        let result = self.handle_packet_inner(now, payload);
        self.refresh_gauges();
        result
    }

    fn handle_packet_inner(&mut self, now: Instant, payload: &[u8]) -> Result<(), PacketError> {
        let (pn, eliciting) = match self.check_packet(payload) {
            Ok(Check::Accept { pn, eliciting }) => (pn, eliciting),
            Ok(Check::Duplicate) => {
                self.stats.duplicate_packets += 1;
                return Ok(());
            }
            Ok(Check::OverBudget) => {
                self.stats.reassembly_dropped += 1;
                self.last_received = self.last_received.max(now);
                self.apply_frames(now, payload, true);
                return Err(PacketError::ReassemblyLimit);
            }
            Err(e) => {
                self.stats.malformed_dropped += 1;
                return Err(e);
            }
        };
        self.last_received = self.last_received.max(now);
        self.stats.packets_received += 1;
        self.stats.bytes_received += payload.len() as u64;
        let in_order = !matches!(self.largest_received, Some(l) if pn != l + 1);
        self.record_received(pn);
        if !matches!(self.largest_received, Some(l) if pn <= l) {
            self.largest_received = Some(pn);
            self.largest_received_time = now;
        }
        self.ack_dirty = true;
        if eliciting {
            self.ack_eliciting_pending += 1;
            if self.ack_eliciting_pending >= 2 || !in_order {
                self.ack_deadline = Some(now);
            } else if self.ack_deadline.is_none() {
                self.ack_deadline = Some(now + self.config.max_ack_delay);
            }
        }
        self.apply_frames(now, payload, false);
        Ok(())
    }

    /// Apply a packet that passed [`check_packet`](Self::check_packet).
    ///
    /// A `refused` packet (over the reassembly budget) is not acknowledged, so
    /// only what is safe to apply twice is applied: its ACK frames and the
    /// reliable segments that are next in line on their sub-stream. The
    /// latter keeps a sub-stream moving even when every packet that carries
    /// its missing segment also carries out-of-order data.
    fn apply_frames(&mut self, now: Instant, payload: &[u8], refused: bool) {
        let mut r = Reader::new(payload);
        if r.varint().is_err() {
            return;
        }
        while !r.is_empty() {
            let Ok(frame) = read_frame(&mut r) else {
                return;
            };
            match frame {
                Frame::Ping => {}
                Frame::Ack(ack) => self.on_ack(now, &ack),
                Frame::Reliable {
                    substream,
                    seq,
                    last,
                    data,
                } => {
                    let next = self
                        .recv_streams
                        .get(usize::from(substream))
                        .map(|s| s.next_seq);
                    if !refused || next == Some(seq) {
                        self.on_segment(substream, seq, last, data);
                    }
                }
                Frame::Unreliable(_) | Frame::UnreliableFragment { .. } if refused => {}
                Frame::Unreliable(data) => {
                    self.stats.unreliable_delivered += 1;
                    self.delivered.push_back(Delivered {
                        channel: Channel::Unreliable,
                        data: data.to_vec(),
                    });
                }
                Frame::UnreliableFragment {
                    id,
                    index,
                    count,
                    data,
                } => self.on_unreliable_fragment(now, id, index, count, data),
            }
        }
    }

    fn on_segment(&mut self, substream: u8, seq: u64, last: bool, data: &[u8]) {
        let max_message = self.config.max_message_size;
        let Some(stream) = self.recv_streams.get_mut(usize::from(substream)) else {
            return;
        };
        if seq < stream.next_seq || stream.buffered.contains_key(&seq) {
            self.stats.duplicate_segments += 1;
            return;
        }
        if seq > stream.next_seq {
            self.reassembly_bytes += data.len() + BUFFERED_SEGMENT_COST;
            stream.buffered.insert(seq, (data.to_vec(), last));
            return;
        }
        // In order: append, then drain whatever became contiguous.
        let mut piece: Option<Vec<u8>> = None;
        let mut is_last = last;
        loop {
            let len = piece.as_ref().map_or(data.len(), Vec::len);
            if stream.partial.len() + len > max_message {
                // Protocol violation: drop the oversized message.
                self.reassembly_bytes -= stream.partial.len();
                stream.partial = Vec::new();
                self.stats.malformed_dropped += 1;
            } else if stream.partial.is_empty() && is_last {
                let data = piece.take().unwrap_or_else(|| data.to_vec());
                self.delivered.push_back(Delivered {
                    channel: Channel::Reliable(substream),
                    data,
                });
                self.stats.reliable_delivered += 1;
            } else {
                match &piece {
                    Some(bytes) => stream.partial.extend_from_slice(bytes),
                    None => stream.partial.extend_from_slice(data),
                }
                self.reassembly_bytes += len;
                if is_last {
                    self.reassembly_bytes -= stream.partial.len();
                    let data = std::mem::take(&mut stream.partial);
                    self.delivered.push_back(Delivered {
                        channel: Channel::Reliable(substream),
                        data,
                    });
                    self.stats.reliable_delivered += 1;
                }
            }
            stream.next_seq += 1;
            match stream.buffered.first_entry() {
                Some(entry) if *entry.key() == stream.next_seq => {
                    let (bytes, l) = entry.remove();
                    self.reassembly_bytes -= bytes.len() + BUFFERED_SEGMENT_COST;
                    piece = Some(bytes);
                    is_last = l;
                }
                _ => break,
            }
        }
    }

    fn on_unreliable_fragment(
        &mut self,
        now: Instant,
        id: u64,
        index: u32,
        count: u32,
        data: &[u8],
    ) {
        let expiry = self.config.max_rto.max(self.config.heartbeat_interval);
        self.newest_unreliable_id = self.newest_unreliable_id.max(id);
        let newest = self.newest_unreliable_id;
        let mut freed = 0usize;
        let before = self.unreliable_partials.len();
        self.unreliable_partials.retain(|p| {
            let keep =
                p.id.saturating_add(UNRELIABLE_ID_WINDOW) >= newest && now < p.started + expiry;
            if !keep {
                freed += p.bytes;
            }
            keep
        });
        self.stats.unreliable_expired += (before - self.unreliable_partials.len()) as u64;
        self.reassembly_bytes -= freed;
        if id.saturating_add(UNRELIABLE_ID_WINDOW) < newest {
            return;
        }
        let position = match self.unreliable_partials.iter().position(|p| p.id == id) {
            Some(i) => i,
            None => {
                if self.unreliable_partials.len() >= MAX_UNRELIABLE_PARTIALS {
                    let oldest = (0..self.unreliable_partials.len())
                        .min_by_key(|&i| self.unreliable_partials[i].id)
                        .unwrap_or(0);
                    let p = self.unreliable_partials.swap_remove(oldest);
                    self.reassembly_bytes -= p.bytes;
                    self.stats.unreliable_expired += 1;
                }
                self.unreliable_partials.push(UnreliablePartial {
                    id,
                    count,
                    bytes: 0,
                    started: now,
                    fragments: BTreeMap::new(),
                });
                self.unreliable_partials.len() - 1
            }
        };
        let partial = &mut self.unreliable_partials[position];
        let too_big = partial.bytes + data.len() > self.config.max_message_size
            || self.reassembly_bytes + data.len() > self.config.max_reassembly_bytes;
        if partial.count != count || too_big {
            let p = self.unreliable_partials.swap_remove(position);
            self.reassembly_bytes -= p.bytes;
            self.stats.unreliable_expired += 1;
            return;
        }
        if partial.fragments.contains_key(&index) {
            return;
        }
        partial.fragments.insert(index, data.to_vec());
        partial.bytes += data.len();
        self.reassembly_bytes += data.len();
        if partial.fragments.len() == partial.count as usize {
            let p = self.unreliable_partials.swap_remove(position);
            self.reassembly_bytes -= p.bytes;
            let mut message = Vec::with_capacity(p.bytes);
            for fragment in p.fragments.values() {
                message.extend_from_slice(fragment);
            }
            self.stats.unreliable_delivered += 1;
            self.delivered.push_back(Delivered {
                channel: Channel::Unreliable,
                data: message,
            });
        }
    }
}

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
/// What holding one unreliable fragment costs besides its bytes (its
/// buffer and its place in the map), charged to the reassembly budget.
const HELD_FRAGMENT_COST: usize = 64;
/// Worst-case framing of a tracked unreliable message: type, length, and
/// the PING that makes its packet ack-eliciting.
const TRACKED_OVERHEAD: usize = 1 + MAX_VARINT_LEN + 1;
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
    /// Unreliable messages whose fate is reported (see
    /// [`Link::send_unreliable_tracked`]), with their tokens.
    tracked_queue: VecDeque<(Vec<u8>, u64)>,
    /// The token of the next tracked message.
    next_token: u64,
    /// Tokens of the tracked messages carried by the packets in `sent`, in
    /// the same order.
    sent_tokens: VecDeque<u64>,
    /// Global index of `sent_tokens[0]`.
    sent_tokens_base: u64,
    /// Global index of the next token pushed to `sent_tokens`.
    sent_tokens_next: u64,
    /// What became of tracked messages: (token, acknowledged), not yet polled.
    outcomes: VecDeque<(u64, bool)>,
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
    /// The tracked unreliable messages it carries (global indexes into
    /// `sent_tokens`).
    tokens_start: u64,
    tokens_len: u32,
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
    /// The memory it is charged in `reassembly_bytes`: its bytes and a
    /// fixed cost per fragment held (so one-byte fragments cost what they
    /// take).
    cost: usize,
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
    has_tracked: bool,
}

impl Wants {
    /// Whether anything at all is to be sent.
    fn any(&self) -> bool {
        self.ack_due
            || self.ping_due
            || self.has_reliable
            || self.has_unreliable
            || self.has_tracked
    }
}

mod frames;
mod recv;
mod send;

use frames::*;

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
            tracked_queue: VecDeque::new(),
            next_token: 0,
            sent_tokens: VecDeque::new(),
            sent_tokens_base: 0,
            sent_tokens_next: 0,
            outcomes: VecDeque::new(),
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

    /// A fresh link, created at `now`, whose packet numbers go on after
    /// this one's: it replaces this link towards the same address, and the
    /// peer's link may have taken this one's packets for its own (a
    /// joiner's link built from packets meant for a station that was at
    /// its address before), so the replacement's first packets are not
    /// taken there for duplicates.
    pub fn successor(&self, now: Instant) -> Link {
        let mut link = Link::new(self.config.clone(), now);
        link.next_pn = self.next_pn;
        link
    }

    /// Takes up a link that was not driven for a while (kept for a peer
    /// that may come back): its peer counts as heard from at `now`, and its
    /// retransmission timer starts afresh.
    pub fn revive(&mut self, now: Instant) {
        self.last_received = self.last_received.max(now);
        self.backoff = 0;
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
        self.queue_reliable(substream, message.len(), || message.to_vec())
    }

    /// [`Link::send_reliable`] for a message the caller hands over (spares
    /// a copy).
    pub fn send_reliable_owned(
        &mut self,
        substream: u8,
        message: Vec<u8>,
    ) -> Result<(), SendError> {
        self.queue_reliable(substream, message.len(), || message)
    }

    fn queue_reliable(
        &mut self,
        substream: u8,
        len: usize,
        message: impl FnOnce() -> Vec<u8>,
    ) -> Result<(), SendError> {
        let stream = self
            .send_streams
            .get_mut(usize::from(substream))
            .ok_or(SendError::BadSubstream(substream))?;
        if len > self.config.max_message_size {
            return Err(SendError::TooLarge {
                size: len,
                max: self.config.max_message_size,
            });
        }
        stream.queue.push_back(message());
        stream.messages_queued += 1;
        self.queued_bytes += len;
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

    /// Queue an unreliable message whose fate is reported: it is never sent
    /// again, and [`Link::poll_outcome`] later says whether the packet that
    /// carried it was acknowledged or declared lost. Returns its token.
    ///
    /// Unlike [`Link::send_unreliable`], the message is never fragmented
    /// (at most [`Link::max_tracked_message`] bytes), its packet is
    /// ack-eliciting, and it is sent within the congestion window and
    /// paced like reliable data.
    pub fn send_unreliable_tracked(&mut self, message: &[u8]) -> Result<u64, SendError> {
        let max = self.max_tracked_message();
        if message.len() > max {
            return Err(SendError::TooLarge {
                size: message.len(),
                max,
            });
        }
        let token = self.next_token;
        self.next_token += 1;
        self.tracked_queue.push_back((message.to_vec(), token));
        self.queued_bytes += message.len();
        self.stats.unreliable_sent += 1;
        Ok(token)
    }

    /// The largest message [`Link::send_unreliable_tracked`] takes: what
    /// fits whole in an otherwise empty packet.
    pub fn max_tracked_message(&self) -> usize {
        (self.max_fragment + FRAGMENT_OVERHEAD).saturating_sub(TRACKED_OVERHEAD)
    }

    /// What became of the next tracked message: `(token, true)` once the
    /// packet carrying it was acknowledged, `(token, false)` once it was
    /// declared lost. Each token is reported once, in no particular order.
    pub fn poll_outcome(&mut self) -> Option<(u64, bool)> {
        self.outcomes.pop_front()
    }

    /// Whether [`Link::poll_outcome`] has something to report.
    pub fn has_outcomes(&self) -> bool {
        !self.outcomes.is_empty()
    }

    /// How many bytes the congestion window lets go now: the window minus
    /// the bytes in flight (unbounded without congestion control), less
    /// what is queued and not yet sent.
    pub fn send_allowance(&self) -> u64 {
        let path = if self.config.congestion_control {
            self.congestion
                .window()
                .saturating_sub(self.congestion.bytes_in_flight())
        } else {
            u64::MAX
        };
        path.saturating_sub(self.queued_bytes as u64)
    }

    /// Next message ready for the application.
    pub fn poll_message(&mut self) -> Option<Delivered> {
        self.delivered.pop_front()
    }

    /// The highest packet number received from the peer.
    pub fn largest_received(&self) -> Option<u64> {
        self.largest_received
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
            "reassembly {} recv {:?} send {:?} retransmit {} in_flight {} sent {} rto {:?} tracked {} cwnd {} bif {} sent0 {:?}",
            self.reassembly_bytes,
            recv,
            send,
            self.retransmit.len(),
            self.in_flight,
            self.sent.len(),
            self.rto(),
            self.tracked_queue.len(),
            self.congestion.window(),
            self.congestion.bytes_in_flight(),
            self.sent.front().map(|p| (p.pn, p.time_sent, p.in_flight))
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

    /// Bytes charged to the reassembly budget right now (out-of-order
    /// segments and unreliable fragments, with what holding each costs).
    pub fn reassembly_bytes(&self) -> usize {
        self.reassembly_bytes
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
            if self.window_open() && (self.reliable_pending() || !self.tracked_queue.is_empty()) {
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
            has_tracked: self.window_open()
                && self.congestion.pacer_open(now)
                && !self.tracked_queue.is_empty(),
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
        self.wants(now).any()
    }
}

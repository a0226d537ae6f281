//! The per-peer reliable transport.
//!
//! Every netz datagram starts with a [`PacketHeader`]. Datagrams of kind
//! [`PacketKind::Link`] carry the frames of one [`Link`]: the reliability state
//! kept for one peer. A link multiplexes several reliable, ordered sub-streams
//! and one unreliable channel over a single sequence of numbered packets.
//!
//! # Link packet layout
//!
//! After the header, a link packet is a packet number (varint, strictly
//! increasing per link and direction) followed by frames until the end of the
//! datagram. Every frame starts with a type byte; integers are unsigned LEB128
//! varints unless stated otherwise:
//!
//! | type   | frame | body |
//! |--------|-------|------|
//! | `0x01` | PING | nothing; only elicits an acknowledgement |
//! | `0x02` | ACK | `largest`, `ack_delay` (µs), `range_count`, `first_range`, then `range_count` × (`gap`, `range_len`) |
//! | `0x03` | RELIABLE | sub-stream (1 byte), `seq`, `len << 1 \| last`, `len` bytes of data |
//! | `0x04` | UNRELIABLE | `len`, `len` bytes: one whole message |
//! | `0x05` | UNRELIABLE_FRAGMENT | `message_id`, `index`, `count`, `len`, `len` bytes |
//!
//! ACK ranges follow QUIC: the first range is `[largest - first_range, largest]`;
//! each further range lies below the previous one, its largest number being
//! `previous_smallest - gap - 2` and its smallest `largest - range_len`.
//!
//! Packet numbers above 2^62 are rejected. Packets that carry only ACK and
//! unreliable frames are not ack-eliciting.
//!
//! Reliable messages are split into segments; each sub-stream numbers its
//! segments consecutively from zero, and the `last` flag marks the final
//! segment of a message. Packets carrying RELIABLE or PING frames are
//! ack-eliciting; lost packets are detected by timeout (RTO) or when a packet
//! sent three packet numbers later has been acknowledged, and their segments
//! are sent again in new packets.

mod codec;
mod congestion;
mod header;
mod link;
#[cfg(test)]
mod tests;

use std::time::Duration;

pub use header::{PacketHeader, PacketKind, MAGIC, PROTOCOL_VERSION};
pub use link::Link;

/// Tuning of a [`Link`]. Shared by all links of a station through an `Arc`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransportConfig {
    /// Largest datagram produced, header included. Default 1200.
    pub max_datagram_size: usize,
    /// Number of reliable ordered sub-streams per link (ids `0..substreams`).
    /// Default 4. Both ends of a link must agree.
    pub substreams: u8,
    /// Round-trip time assumed before the first measurement. Default 100 ms.
    pub initial_rtt: Duration,
    /// Lower bound of the retransmission timeout. Default 20 ms.
    pub min_rto: Duration,
    /// Upper bound of the retransmission timeout, backoff included. Default 2 s.
    pub max_rto: Duration,
    /// Longest an acknowledgement is delayed; acks also piggyback on any
    /// outgoing packet. Default 5 ms.
    pub max_ack_delay: Duration,
    /// When no ack-eliciting packet was sent for this long, a PING is sent.
    /// Default 200 ms.
    pub heartbeat_interval: Duration,
    /// Largest message accepted by [`Link::send_reliable`] and
    /// [`Link::send_unreliable`] (and reassembled on receipt). Default 1 MiB.
    pub max_message_size: usize,
    /// Send window in packets: beyond this many unacknowledged ack-eliciting
    /// packets, reliable data waits in its queue, whatever the congestion
    /// window. Default 512.
    pub max_unacked_packets: usize,
    /// Whether reliable data is sent within a congestion window and paced
    /// (NewReno, RFC 9002): see [`Link`]. Default true.
    pub congestion_control: bool,
    /// The congestion window before any loss, in bytes: how much reliable
    /// data may be in flight before the first acknowledgement (and the
    /// first burst the pacer lets go at once). Default 64 KiB; at least two
    /// datagrams, at most `max_unacked_packets` datagrams.
    pub initial_window: usize,
    /// Per link cap on out-of-order buffered and partially reassembled data
    /// on the receiving side. Default 4 MiB.
    pub max_reassembly_bytes: usize,
}

impl Default for TransportConfig {
    fn default() -> Self {
        TransportConfig {
            max_datagram_size: 1200,
            substreams: 4,
            initial_rtt: Duration::from_millis(100),
            min_rto: Duration::from_millis(20),
            max_rto: Duration::from_secs(2),
            max_ack_delay: Duration::from_millis(5),
            heartbeat_interval: Duration::from_millis(200),
            max_message_size: 1 << 20,
            max_unacked_packets: 512,
            congestion_control: true,
            initial_window: 64 << 10,
            max_reassembly_bytes: 4 << 20,
        }
    }
}

/// A message handed to the application by [`Link::poll_message`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivered {
    /// Where the message travelled.
    pub channel: Channel,
    /// The message's bytes.
    pub data: Vec<u8>,
}

/// The channel a message travelled on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Channel {
    /// Reliable ordered sub-stream with this id.
    Reliable(u8),
    /// The unreliable channel.
    Unreliable,
}

/// Why an incoming datagram was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PacketError {
    /// The datagram ended in the middle of a field.
    #[error("truncated packet")]
    Truncated,
    /// The first byte is not the netz magic byte.
    #[error("bad magic byte")]
    BadMagic,
    /// The protocol version is not supported.
    #[error("unsupported protocol version {0}")]
    UnsupportedVersion(u8),
    /// The header's kind byte is unknown.
    #[error("unknown packet kind {0}")]
    UnknownPacketKind(u8),
    /// A frame type byte is unknown.
    #[error("unknown frame type {0:#04x}")]
    UnknownFrame(u8),
    /// A field holds an impossible value.
    #[error("malformed packet: {0}")]
    Malformed(&'static str),
    /// The packet was well formed but its out-of-order reliable data could
    /// not be buffered because the link's reassembly budget is exhausted. The
    /// packet is not acknowledged, so the peer sends its data again later
    /// (its acks and any segments next in line were still processed). This is
    /// not a protocol violation.
    #[error("reassembly buffer full, packet dropped")]
    ReassemblyLimit,
}

/// Why a message could not be queued.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SendError {
    /// The sub-stream id is not below [`TransportConfig::substreams`].
    #[error("no such sub-stream: {0}")]
    BadSubstream(u8),
    /// The message exceeds [`TransportConfig::max_message_size`].
    #[error("message of {size} bytes exceeds the maximum of {max}")]
    TooLarge {
        /// Size of the rejected message.
        size: usize,
        /// The configured maximum.
        max: usize,
    },
}

/// Counters of one [`Link`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LinkStats {
    /// Packets produced by `poll_packet`.
    pub packets_sent: u64,
    /// Valid, non-duplicate packets accepted.
    pub packets_received: u64,
    /// Link payload bytes produced (headers excluded).
    pub bytes_sent: u64,
    /// Link payload bytes of accepted packets (headers excluded).
    pub bytes_received: u64,
    /// Reliable segments sent again after their packet was deemed lost.
    pub retransmissions: u64,
    /// Sent packets declared lost.
    pub packets_lost: u64,
    /// Packets dropped because their packet number was seen before.
    pub duplicate_packets: u64,
    /// Reliable segments ignored because they were already delivered or buffered.
    pub duplicate_segments: u64,
    /// Packets rejected as malformed.
    pub malformed_dropped: u64,
    /// Packets refused because the reassembly budget was exhausted.
    pub reassembly_dropped: u64,
    /// Partially received unreliable messages abandoned.
    pub unreliable_expired: u64,
    /// Packets consisting only of an ACK frame.
    pub ack_only_sent: u64,
    /// PING frames sent.
    pub pings_sent: u64,
    /// Reliable messages queued.
    pub reliable_sent: u64,
    /// Unreliable messages queued.
    pub unreliable_sent: u64,
    /// Tracked unreliable messages whose packet was acknowledged.
    pub tracked_acked: u64,
    /// Tracked unreliable messages whose packet was declared lost.
    pub tracked_lost: u64,
    /// Reliable messages delivered to the application.
    pub reliable_delivered: u64,
    /// Unreliable messages delivered to the application.
    pub unreliable_delivered: u64,
    /// Round-trip time measurements taken.
    pub rtt_samples: u64,
    /// Times the congestion window was reduced after a loss (at most once
    /// per recovery period).
    pub congestion_events: u64,
    /// Times persistent congestion brought the window to its minimum.
    pub persistent_congestion: u64,
    /// Times the pacer held reliable data back.
    pub paced: u64,
    /// The congestion window, in bytes (a gauge).
    pub cwnd: u64,
    /// Bytes of ack-eliciting packets in flight (a gauge).
    pub bytes_in_flight: u64,
    /// The smoothed round-trip time (a gauge).
    pub srtt: Duration,
    /// The round-trip time variation (a gauge).
    pub rttvar: Duration,
    /// Reliable segments waiting to be sent again (a gauge). Bounded: a
    /// segment is queued at most once, and only segments of packets in
    /// the send window are.
    pub retransmit_backlog: u64,
}

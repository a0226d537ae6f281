//! The packet header that starts every netz datagram.

use super::codec::{write_varint, Reader};
use super::PacketError;

/// First byte of every netz datagram (`'N'`).
pub const MAGIC: u8 = 0x4E;

/// Wire protocol version carried in the second byte.
pub const PROTOCOL_VERSION: u8 = 9;

/// What follows the header of a datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum PacketKind {
    /// Link frames (reliable and unreliable data, acks, pings) for
    /// [`Link::handle_packet`](super::Link::handle_packet).
    Link,
    /// One raw message, used before a link exists (e.g. join requests).
    Connectionless,
    /// A probe to a station declared failed, after a partition (sealed
    /// under the keys of the link the two had, with security on): see the
    /// station's partition rule.
    Probe,
}

impl PacketKind {
    fn to_byte(self) -> u8 {
        match self {
            PacketKind::Link => 0,
            PacketKind::Connectionless => 1,
            PacketKind::Probe => 2,
        }
    }

    fn from_byte(byte: u8) -> Result<Self, PacketError> {
        match byte {
            0 => Ok(PacketKind::Link),
            1 => Ok(PacketKind::Connectionless),
            2 => Ok(PacketKind::Probe),
            _ => Err(PacketError::UnknownPacketKind(byte)),
        }
    }
}

/// The header at the start of every netz datagram.
///
/// Wire layout:
///
/// | bytes | field |
/// |-------|-------|
/// | 1     | magic `0x4E` (`'N'`) |
/// | 1     | protocol version (`1`) |
/// | 1     | kind: `0` = link, `1` = connectionless, `2` = probe |
/// | 1–5   | `session`, unsigned LEB128 varint |
/// | 1–5   | `sender`, unsigned LEB128 varint |
/// | 1–5   | `receiver`, unsigned LEB128 varint |
///
/// The header is therefore between 6 and [`PacketHeader::MAX_SIZE`] bytes long.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PacketHeader {
    /// What follows the header.
    pub kind: PacketKind,
    /// Session tag; 0 when not yet known.
    pub session: u32,
    /// The sender's station id; 0 when not yet assigned.
    pub sender: u32,
    /// The receiver's station id; 0 when not yet known.
    pub receiver: u32,
}

impl PacketHeader {
    /// Largest encoded size of a header.
    pub const MAX_SIZE: usize = 3 + 3 * 5;

    /// Append the encoded header to `out`.
    pub fn encode(&self, out: &mut Vec<u8>) {
        out.reserve(Self::MAX_SIZE);
        out.push(MAGIC);
        out.push(PROTOCOL_VERSION);
        out.push(self.kind.to_byte());
        write_varint(out, u64::from(self.session));
        write_varint(out, u64::from(self.sender));
        write_varint(out, u64::from(self.receiver));
    }

    /// Encoded size of this header.
    pub fn encoded_len(&self) -> usize {
        use super::codec::varint_len;
        3 + varint_len(u64::from(self.session))
            + varint_len(u64::from(self.sender))
            + varint_len(u64::from(self.receiver))
    }

    /// Parse the header; returns it and the rest of the datagram.
    pub fn decode(datagram: &[u8]) -> Result<(PacketHeader, &[u8]), PacketError> {
        let mut r = Reader::new(datagram);
        let magic = r.u8()?;
        if magic != MAGIC {
            return Err(PacketError::BadMagic);
        }
        let version = r.u8()?;
        if version != PROTOCOL_VERSION {
            return Err(PacketError::UnsupportedVersion(version));
        }
        let kind = PacketKind::from_byte(r.u8()?)?;
        let session = r.varint_u32()?;
        let sender = r.varint_u32()?;
        let receiver = r.varint_u32()?;
        Ok((
            PacketHeader {
                kind,
                session,
                sender,
                receiver,
            },
            r.rest(),
        ))
    }
}

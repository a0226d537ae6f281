//! Hand-written wire primitives: LEB128 varints and a bounds-checked reader.

use super::PacketError;

/// Largest encoded size of a `u64` varint.
pub(crate) const MAX_VARINT_LEN: usize = 10;

/// Append `value` as an unsigned LEB128 varint.
#[inline]
pub(crate) fn write_varint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push((value as u8) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

/// Encoded size of `value` as a varint.
#[inline]
pub(crate) fn varint_len(value: u64) -> usize {
    let bits = 64 - (value | 1).leading_zeros() as usize;
    bits.div_ceil(7)
}

/// A cursor over untrusted bytes. Every read is bounds-checked.
#[derive(Clone, Copy)]
pub(crate) struct Reader<'a> {
    bytes: &'a [u8],
}

impl<'a> Reader<'a> {
    #[inline]
    pub(crate) fn new(bytes: &'a [u8]) -> Self {
        Reader { bytes }
    }

    #[inline]
    pub(crate) fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    #[inline]
    pub(crate) fn remaining(&self) -> usize {
        self.bytes.len()
    }

    #[inline]
    pub(crate) fn rest(&self) -> &'a [u8] {
        self.bytes
    }

    #[inline]
    pub(crate) fn u8(&mut self) -> Result<u8, PacketError> {
        let (&first, rest) = self.bytes.split_first().ok_or(PacketError::Truncated)?;
        self.bytes = rest;
        Ok(first)
    }

    /// Read a `u64` varint; rejects overlong and overflowing encodings.
    #[inline]
    pub(crate) fn varint(&mut self) -> Result<u64, PacketError> {
        let mut value: u64 = 0;
        for i in 0..MAX_VARINT_LEN {
            let byte = self.u8()?;
            let part = u64::from(byte & 0x7F);
            if i == MAX_VARINT_LEN - 1 && part > 1 {
                return Err(PacketError::Malformed("varint overflows 64 bits"));
            }
            value |= part << (7 * i);
            if byte & 0x80 == 0 {
                if byte == 0 && i > 0 {
                    return Err(PacketError::Malformed("overlong varint"));
                }
                return Ok(value);
            }
        }
        Err(PacketError::Malformed("varint too long"))
    }

    /// Read a varint that must fit in a `u32`.
    #[inline]
    pub(crate) fn varint_u32(&mut self) -> Result<u32, PacketError> {
        u32::try_from(self.varint()?).map_err(|_| PacketError::Malformed("value exceeds 32 bits"))
    }

    /// Read a varint length and check that this many bytes remain.
    #[inline]
    pub(crate) fn length(&mut self) -> Result<usize, PacketError> {
        let len = self.varint()?;
        match usize::try_from(len) {
            Ok(len) if len <= self.bytes.len() => Ok(len),
            _ => Err(PacketError::Truncated),
        }
    }

    #[inline]
    pub(crate) fn bytes(&mut self, len: usize) -> Result<&'a [u8], PacketError> {
        if len > self.bytes.len() {
            return Err(PacketError::Truncated);
        }
        let (head, rest) = self.bytes.split_at(len);
        self.bytes = rest;
        Ok(head)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varint_roundtrip_and_len() {
        let values = [
            0u64,
            1,
            127,
            128,
            300,
            16_383,
            16_384,
            u32::MAX as u64,
            u64::MAX - 1,
            u64::MAX,
        ];
        for &v in &values {
            let mut out = Vec::new();
            write_varint(&mut out, v);
            assert_eq!(out.len(), varint_len(v), "len of {v}");
            let mut r = Reader::new(&out);
            assert_eq!(r.varint().unwrap(), v);
            assert!(r.is_empty());
        }
    }

    #[test]
    fn varint_rejects_garbage() {
        assert!(Reader::new(&[0x80]).varint().is_err());
        assert!(Reader::new(&[0x80, 0x00]).varint().is_err());
        assert!(Reader::new(&[0xFF; 11]).varint().is_err());
        assert!(
            Reader::new(&[0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x02])
                .varint()
                .is_err()
        );
        assert!(Reader::new(&[0xFF, 0xFF, 0xFF, 0xFF, 0x1F])
            .varint_u32()
            .is_err());
        assert!(Reader::new(&[0x05, 1, 2]).length().is_err());
    }
}

//! The sending side of a link: building packets.

use super::*;

impl Link {
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
        let wants = self.wants(now);
        if !wants.any() {
            return false;
        }
        let Wants {
            ping_due,
            has_reliable,
            has_unreliable,
            has_tracked,
            ..
        } = wants;

        let pn = self.next_pn;
        write_varint(buf, pn);
        let mut ack_top_low = None;
        if self.ack_dirty {
            ack_top_low = self.write_ack(now, buf, limit);
        }
        let data_limit = if ping_due { limit - 1 } else { limit };
        let frames_start = self.sent_frames_next;
        let tokens_start = self.sent_tokens_next;
        let mut eliciting = false;
        if has_reliable {
            eliciting |= self.write_retransmits(buf, data_limit);
            eliciting |= self.write_new_reliable(buf, data_limit);
        }
        // Room is kept for the PING that makes the packet ack-eliciting.
        if has_tracked && self.write_tracked(buf, limit - 1) && !eliciting {
            buf.push(FRAME_PING);
            eliciting = true;
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
            let tokens_len = (self.sent_tokens_next - tokens_start) as u32;
            let size = buf.len() as u32;
            self.sent.push_back(SentPacket {
                pn,
                time_sent: now,
                frames_start,
                frames_len,
                tokens_start,
                tokens_len,
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
    pub(super) fn write_ack(
        &mut self,
        now: Instant,
        buf: &mut Vec<u8>,
        limit: usize,
    ) -> Option<u64> {
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

    pub(super) fn write_retransmits(&mut self, buf: &mut Vec<u8>, limit: usize) -> bool {
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

    pub(super) fn write_new_reliable(&mut self, buf: &mut Vec<u8>, limit: usize) -> bool {
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

    /// Writes the tracked messages that fit whole; returns whether any did.
    pub(super) fn write_tracked(&mut self, buf: &mut Vec<u8>, limit: usize) -> bool {
        let mut wrote = false;
        while let Some((message, token)) = self.tracked_queue.front() {
            let len = message.len();
            if buf.len() + 1 + varint_len(len as u64) + len > limit {
                break;
            }
            buf.push(FRAME_UNRELIABLE);
            write_varint(buf, len as u64);
            buf.extend_from_slice(message);
            self.sent_tokens.push_back(*token);
            self.sent_tokens_next += 1;
            self.queued_bytes = self.queued_bytes.saturating_sub(len);
            self.tracked_queue.pop_front();
            wrote = true;
        }
        wrote
    }

    pub(super) fn write_unreliable(&mut self, buf: &mut Vec<u8>, limit: usize) -> bool {
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
}

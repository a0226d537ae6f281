//! The receiving side of a link: packets, acknowledgements, reassembly.

use super::frames::*;
use super::*;

impl Link {
    pub(super) fn declare_lost(&mut self, index: usize) {
        let p = &mut self.sent[index];
        p.in_flight = false;
        self.in_flight -= 1;
        self.congestion.on_lost(u64::from(p.size));
        self.stats.packets_lost += 1;
        let tokens = (p.tokens_start - self.sent_tokens_base) as usize;
        let tokens = tokens..tokens + p.tokens_len as usize;
        for &t in self.sent_tokens.range(tokens) {
            self.outcomes.push_back((t, false));
            self.stats.tracked_lost += 1;
        }
        let p = &self.sent[index];
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

    pub(super) fn on_packet_acked(&mut self, index: usize, in_flight_before: u64) {
        let p = &mut self.sent[index];
        p.in_flight = false;
        p.acked = true;
        self.in_flight -= 1;
        self.congestion
            .on_acked(p.time_sent, u64::from(p.size), in_flight_before);
        let ack_top_low = p.ack_top_low;
        let tokens = (p.tokens_start - self.sent_tokens_base) as usize;
        let tokens = tokens..tokens + p.tokens_len as usize;
        for &t in self.sent_tokens.range(tokens) {
            self.outcomes.push_back((t, true));
            self.stats.tracked_acked += 1;
        }
        let p = &self.sent[index];
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
    pub(super) fn remove_finished(&mut self) {
        while let Some(p) = self.sent.front() {
            if p.in_flight {
                break;
            }
            let n = p.frames_len as usize;
            self.sent_frames.drain(..n);
            self.sent_frames_base += n as u64;
            let n = p.tokens_len as usize;
            self.sent_tokens.drain(..n);
            self.sent_tokens_base += n as u64;
            self.sent.pop_front();
        }
    }

    pub(super) fn on_ack(&mut self, now: Instant, ack: &AckFrame<'_>) {
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

    pub(super) fn update_rtt(&mut self, sample: Duration, ack_delay: Duration) {
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

    pub(super) fn is_duplicate(&self, pn: u64) -> bool {
        if pn < self.recv_floor {
            return true;
        }
        let i = self.recv_ranges.partition_point(|r| r.1 < pn);
        self.recv_ranges.get(i).is_some_and(|r| r.0 <= pn)
    }

    pub(super) fn record_received(&mut self, pn: u64) {
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
    pub(super) fn check_packet(&self, payload: &[u8]) -> Result<Check, PacketError> {
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

    /// Whether `payload` (as [`Link::handle_packet`] takes it) is a
    /// well-formed packet newer than any received so far; changes nothing.
    pub fn is_newest(&self, payload: &[u8]) -> bool {
        match self.check_packet(payload) {
            Ok(Check::Accept { pn, .. }) => !matches!(self.largest_received, Some(l) if pn <= l),
            _ => false,
        }
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

    pub(super) fn handle_packet_inner(
        &mut self,
        now: Instant,
        payload: &[u8],
    ) -> Result<(), PacketError> {
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
    pub(super) fn apply_frames(&mut self, now: Instant, payload: &[u8], refused: bool) {
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

    pub(super) fn on_segment(&mut self, substream: u8, seq: u64, last: bool, data: &[u8]) {
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

    pub(super) fn on_unreliable_fragment(
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
                freed += p.cost;
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
                    self.reassembly_bytes -= p.cost;
                    self.stats.unreliable_expired += 1;
                }
                self.unreliable_partials.push(UnreliablePartial {
                    id,
                    count,
                    bytes: 0,
                    cost: 0,
                    started: now,
                    fragments: BTreeMap::new(),
                });
                self.unreliable_partials.len() - 1
            }
        };
        let partial = &mut self.unreliable_partials[position];
        let cost = data.len() + HELD_FRAGMENT_COST;
        let too_big = partial.bytes + data.len() > self.config.max_message_size
            || self.reassembly_bytes + cost > self.config.max_reassembly_bytes;
        if partial.count != count || too_big {
            let p = self.unreliable_partials.swap_remove(position);
            self.reassembly_bytes -= p.cost;
            self.stats.unreliable_expired += 1;
            return;
        }
        if partial.fragments.contains_key(&index) {
            return;
        }
        partial.fragments.insert(index, data.to_vec());
        partial.bytes += data.len();
        partial.cost += cost;
        self.reassembly_bytes += cost;
        if partial.fragments.len() == partial.count as usize {
            let p = self.unreliable_partials.swap_remove(position);
            self.reassembly_bytes -= p.cost;
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

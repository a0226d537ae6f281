//! Entry points for fuzzing: the `cargo fuzz` targets in `fuzz/` and the
//! property tests in `netz-core/tests/fuzz_props.rs` both call these, so
//! that a crash found by one is reproduced by the other.
//!
//! Each function takes arbitrary bytes and must never panic, hang or grow
//! memory without bound, whatever the bytes are.

use crate::cluster::Cluster;
use crate::crypto::{SecurityConfig, TokenGrant, TokenIssuer};
use crate::ids::ProcessType;
use crate::session::StationConfig;
use crate::sim::SimConfig;
use crate::transport::{Link, PacketHeader, PacketKind, TransportConfig};
use crate::wire::{Envelope, Msg};
use crate::{Instant, Registry};
use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

/// Decodes `data` as every kind of datagram netz parses: the packet
/// header, link frames (fed to a fresh link), a connectionless message and
/// an envelope.
pub fn decode_datagram(data: &[u8]) {
    if let Ok((header, payload)) = PacketHeader::decode(data) {
        assert!(header.encoded_len() <= data.len());
        match header.kind {
            PacketKind::Link => {
                let now = Instant::from_millis(1);
                let mut link = Link::new(Arc::new(TransportConfig::default()), now);
                if link.handle_packet(now, payload).is_ok() {
                    while let Some(d) = link.poll_message() {
                        let _ = Envelope::decode(&d.data);
                    }
                    let mut buf = Vec::new();
                    let _ = link.poll_packet(now, &mut buf);
                }
            }
            _ => {
                let _ = postcard::from_bytes::<Msg>(payload);
            }
        }
    }
    // Connect tokens are opened from untrusted bytes too.
    let issuer = TokenIssuer::new(&FUZZ_KEY, 1);
    let _ = issuer.open(data, 0);
    if let Some(env) = Envelope::decode(data) {
        // What decodes re-encodes.
        let again = env.encode();
        assert!(Envelope::decode(&again).is_some());
    }
}

type Traffic = Vec<(SocketAddr, SocketAddr, Vec<u8>)>;

/// Real traffic of a small session, captured once, used as seeds to mutate.
fn traffic(secure: bool) -> &'static Traffic {
    static CLEAR: OnceLock<Traffic> = OnceLock::new();
    static SECURE: OnceLock<Traffic> = OnceLock::new();
    let cell = if secure { &SECURE } else { &CLEAR };
    cell.get_or_init(|| {
        let mut c = session(secure);
        c.sim.set_recording(true);
        late_join(&mut c, secure);
        c.sim
            .take_deliveries()
            .into_iter()
            .map(|d| (d.from, d.to, d.data))
            .collect()
    })
}

/// What the captured traffic shows: a third station joins and plays.
fn late_join(c: &mut Cluster, secure: bool) {
    let joiner = config(ProcessType::Client, "late", 3, secure);
    let _ = c.join(joiner, 0);
    c.run_for(Duration::from_millis(300));
}

const FUZZ_KEY: [u8; 32] = [0x42; 32];

fn config(p: ProcessType, name: &str, client_id: u64, secure: bool) -> StationConfig {
    let mut cfg = StationConfig::new(p, name);
    if secure {
        cfg.security = Some(if client_id == 0 {
            SecurityConfig::authority(FUZZ_KEY, 1)
        } else {
            let grant = TokenGrant {
                client_id,
                process_type: p,
                expires_at_ms: u64::MAX,
                session: 0,
                address: None,
            };
            let token = TokenIssuer::new(&FUZZ_KEY, 1).issue(&grant, [client_id as u8; 24]);
            SecurityConfig::joiner(token, 1)
        });
    }
    cfg
}

fn session(secure: bool) -> Cluster {
    let registry = Arc::new(Registry::new());
    let configs = vec![
        config(ProcessType::Server, "server", 0, secure),
        config(ProcessType::Client, "client", 2, secure),
    ];
    match Cluster::start(SimConfig::seeded(7), registry, configs) {
        Ok(c) => c,
        Err(e) => panic!("the fuzzing session must start: {e}"),
    }
}

/// A small reader over the fuzzer's bytes; reads past the end give zeros.
struct Input<'a> {
    bytes: &'a [u8],
}

impl Input<'_> {
    fn u8(&mut self) -> u8 {
        match self.bytes.split_first() {
            Some((&b, rest)) => {
                self.bytes = rest;
                b
            }
            None => 0,
        }
    }

    fn u16(&mut self) -> u16 {
        u16::from(self.u8()) | (u16::from(self.u8()) << 8)
    }

    fn take(&mut self, n: usize) -> Vec<u8> {
        let n = n.min(self.bytes.len());
        let (head, rest) = self.bytes.split_at(n);
        self.bytes = rest;
        head.to_vec()
    }
}

/// Runs a session of two stations (a server, the session master, and a
/// client) and feeds the server and the client a sequence of datagrams and
/// timeouts read from `data`: raw bytes, mutated and replayed real traffic,
/// valid headers with garbage, datagrams from strangers, join requests, and
/// time passing. The first byte's low bit turns security on. Stations may
/// leave the session (forged messages in clear can do that) but must never
/// panic; with security on, nothing but replays of real traffic gets past
/// the datagram check.
pub fn station_sequence(data: &[u8]) {
    let secure = data.first().is_some_and(|b| b & 1 == 1);
    let real = traffic(secure);
    let mut c = session(secure);
    if secure {
        // The session that sent the captured traffic: an attacker replays
        // what it saw, packets already delivered. (A session that had not
        // sent them yet would take the copies, sealed under the very keys
        // and counters it is about to use, for its peers' next packets:
        // keys no attacker has.)
        late_join(&mut c, secure);
    }
    let member = c.addrs[1];
    let server = c.addrs[0];
    let mut input = Input {
        bytes: data.get(1..).unwrap_or_default(),
    };
    let mut steps = 0;
    while !input.bytes.is_empty() && steps < 256 {
        steps += 1;
        let op = input.u8();
        let target = if op & 0x80 == 0 { 0 } else { 1 };
        let from = match (op >> 4) & 0x3 {
            0 => {
                if target == 0 {
                    member
                } else {
                    server
                }
            }
            1 => SocketAddr::from(([127, 0, 0, 1], 9000 + u16::from(input.u8() & 7))),
            2 => SocketAddr::from(([10, 0, 0, input.u8()], input.u16())),
            _ => c.addrs[usize::from(input.u8() & 1)],
        };
        let datagram = match op & 0x0F {
            0 => {
                let len = usize::from(input.u8()) * 5;
                input.take(len)
            }
            1 | 2 if !real.is_empty() => {
                let (_, _, bytes) = &real[usize::from(input.u16()) % real.len()];
                let mut bytes = bytes.clone();
                let flips = input.u8() % 4;
                for _ in 0..flips {
                    if bytes.is_empty() {
                        break;
                    }
                    let at = usize::from(input.u16()) % bytes.len();
                    bytes[at] ^= 1 << (input.u8() % 8);
                }
                if op & 0x0F == 2 {
                    let cut = usize::from(input.u16()) % (bytes.len() + 1);
                    bytes.truncate(cut);
                }
                bytes
            }
            3 => {
                let mut b = Vec::new();
                PacketHeader {
                    kind: if input.u8() & 1 == 0 {
                        PacketKind::Link
                    } else {
                        PacketKind::Connectionless
                    },
                    session: u32::from(input.u16()),
                    sender: u32::from(input.u8() % 4),
                    receiver: u32::from(input.u8() % 4),
                }
                .encode(&mut b);
                let len = usize::from(input.u8());
                b.extend(input.take(len));
                b
            }
            4..=7 => {
                let ms = u64::from(input.u8()) * u64::from(1 + (op & 0x0F) - 4);
                c.run_for(Duration::from_millis(ms));
                continue;
            }
            _ if !real.is_empty() => {
                // A replay of real traffic, as sent.
                let (_, _, bytes) = &real[usize::from(input.u16()) % real.len()];
                bytes.clone()
            }
            _ => continue,
        };
        let now = c.now();
        let st = c.station_mut(target);
        st.handle_datagram(now, from, &datagram);
        while st.poll_transmit(now).is_some() {}
        while st.poll_event().is_some() {}
        // The core's deadline is never in the past by more than it reports.
        let _ = st.poll_timeout();
    }
    c.run_for(Duration::from_millis(500));
    for i in 0..2 {
        let st = c.station(i);
        let s = st.stats();
        assert!(s.datagrams_received >= s.malformed_datagrams + s.auth_failed + s.replayed);
    }
    if secure {
        // Garbage cannot break a secure session: it still works.
        let st = c.station(1);
        assert!(
            st.is_in_session() && st.session_master() == crate::StationId(1),
            "{:?}",
            st.stats()
        );
    }
}

/// A connectionless join request as a joiner sends it, for flood tests:
/// `connect` is the sealed connect token (or any bytes).
pub fn join_request_datagram(
    nonce: u64,
    process_type: ProcessType,
    token: &str,
    topology: crate::session::Topology,
    connect: &[u8],
) -> Vec<u8> {
    let mut buf = Vec::new();
    PacketHeader {
        kind: PacketKind::Connectionless,
        session: 0,
        sender: 0,
        receiver: 0,
    }
    .encode(&mut buf);
    let msg = Msg::JoinRequest {
        nonce,
        process_type,
        token: token.into(),
        topology,
        connect: crate::wire::Bytes(connect.to_vec()),
        cookie: [0; 16],
        classes: crate::wire::Bytes(Vec::new()),
        salt: [0; 16],
    };
    postcard::to_extend(&msg, buf).unwrap_or_default()
}

/// One captured datagram: sender, receiver, bytes.
pub type CapturedDatagram = (SocketAddr, SocketAddr, Vec<u8>);

/// Takes captured traffic apart as a receiver would: every datagram's
/// header, the link frames of each direction fed in order to a fresh link,
/// and every delivered message decoded as an envelope and encoded again.
/// Returns the kinds of the messages found, in order, or the first thing
/// that does not decode (or does not encode back to the same bytes).
///
/// Tests use it on traffic captured by an older build to show that the
/// wire format did not change.
pub fn dissect_capture(capture: &[CapturedDatagram]) -> Result<Vec<&'static str>, String> {
    let mut kinds = Vec::new();
    dissect_with(capture, &mut |_, _, msg| kinds.push(msg.name()))?;
    Ok(kinds)
}

/// Like [`dissect_capture`], and for each message its receiver's address,
/// its kind and the object handles it names (the objects it tells the
/// receiver about).
#[allow(clippy::type_complexity)]
pub fn dissect_handles(
    capture: &[CapturedDatagram],
) -> Result<Vec<(SocketAddr, &'static str, Vec<crate::ids::DOHandle>)>, String> {
    let mut out = Vec::new();
    dissect_with(capture, &mut |_, to, msg| {
        let handles = match msg {
            Msg::Create { handle, .. }
            | Msg::Delete { handle }
            | Msg::DuplicaRemoved { handle }
            | Msg::DuplicaHeld { handle }
            | Msg::Update { handle, .. }
            | Msg::MasterChanged { handle, .. }
            | Msg::Migrate { handle, .. }
            | Msg::Rmc { handle, .. }
            | Msg::Action { handle, .. }
            | Msg::NotRelevant { handle } => vec![*handle],
            Msg::Updates { items } => items.iter().map(|(h, _)| *h).collect(),
            Msg::UpdateBatch { data } | Msg::LatestBatch { data } => {
                let latest = matches!(msg, Msg::LatestBatch { .. });
                crate::dataset_codec::decode_batch(&data.0, latest, |_| true)
                    .items
                    .iter()
                    .map(|i| i.handle)
                    .collect()
            }
            _ => Vec::new(),
        };
        out.push((to, msg.name(), handles));
    })?;
    Ok(out)
}

fn dissect_with(
    capture: &[CapturedDatagram],
    f: &mut dyn FnMut(SocketAddr, SocketAddr, &Msg),
) -> Result<(), String> {
    let now = Instant::from_millis(1);
    let mut links: std::collections::HashMap<(SocketAddr, SocketAddr), Link> =
        std::collections::HashMap::new();
    for (i, (from, to, data)) in capture.iter().enumerate() {
        let (header, payload) =
            PacketHeader::decode(data).map_err(|e| format!("datagram {i}: header: {e}"))?;
        match header.kind {
            PacketKind::Connectionless => {
                let msg: Msg = postcard::from_bytes(payload)
                    .map_err(|e| format!("datagram {i}: connectionless message: {e}"))?;
                if postcard::to_allocvec(&msg).ok().as_deref() != Some(payload) {
                    return Err(format!("datagram {i}: {} encodes differently", msg.name()));
                }
                f(*from, *to, &msg);
            }
            PacketKind::Link => {
                let link = links
                    .entry((*from, *to))
                    .or_insert_with(|| Link::observer(Arc::new(TransportConfig::default()), now));
                link.handle_packet(now, payload)
                    .map_err(|e| format!("datagram {i}: link frames: {e}"))?;
                while let Some(d) = link.poll_message() {
                    let env = Envelope::decode(&d.data)
                        .ok_or_else(|| format!("datagram {i}: an envelope does not decode"))?;
                    if env.encode() != d.data {
                        return Err(format!(
                            "datagram {i}: {} encodes differently",
                            env.msg.name()
                        ));
                    }
                    f(*from, *to, &env.msg);
                }
            }
            // A probe carries no message (see the station's partition rule).
            PacketKind::Probe => {}
        }
    }
    Ok(())
}

/// The session a cheating member attacks from inside: four stations on a
/// lossless simulated network (a mesh, or a server and three clients when
/// `client_server`); station 1 is the cheater.
fn inside_world(client_server: bool) -> Cluster {
    let registry = Arc::new(Registry::new());
    let topology = if client_server {
        crate::config::Topology::ClientServer
    } else {
        crate::config::Topology::Mesh
    };
    let configs = (0..4)
        .map(|i| {
            let p = if i == 0 || !client_server {
                ProcessType::Server
            } else {
                ProcessType::Client
            };
            let mut cfg = StationConfig::new(p, format!("s{i}"));
            cfg.topology = topology;
            cfg
        })
        .collect();
    match Cluster::start(SimConfig::seeded(9), registry, configs) {
        Ok(c) => c,
        Err(e) => panic!("the inside fuzzing session must start: {e}"),
    }
}

/// Runs a session in which one member (authenticated, with every right a
/// member has) sends messages built from `data` over its real links —
/// well-formed ones naming real stations and objects, and raw ones — and
/// checks after every step that no honest station believes what the rules
/// do not allow: the session master stays the real one, every honest
/// station stays in the session, and every object an honest station
/// masters keeps that master everywhere. The first byte's low bit picks a
/// client-server session. With `NETZ_INSIDE_TRACE` set, each step is
/// printed (to read a failing input).
pub fn inside_session(data: &[u8]) {
    use crate::forge::{send_as, Forged};
    let client_server = data.first().is_some_and(|b| b & 1 == 1);
    let mut c = inside_world(client_server);
    c.run_for(Duration::from_millis(200));
    let cheater = 1usize;
    let honest = [0usize, 2, 3];
    let ids: Vec<crate::StationId> = (0..4).map(|i| c.station(i).id()).collect();
    let master = c.station(0).id();
    // Each honest station's own objects: (handle, master).
    let owned: Vec<(crate::DOHandle, crate::StationId)> = honest
        .iter()
        .flat_map(|&i| {
            let st = c.station(i);
            st.masters().into_iter().map(move |h| (h, st.id()))
        })
        .collect();
    let handles: Vec<crate::DOHandle> = c.station(0).objects();
    let mut input = Input {
        bytes: data.get(1..).unwrap_or_default(),
    };
    let mut steps = 0;
    while !input.bytes.is_empty() && steps < 64 {
        steps += 1;
        let op = input.u8();
        let pick_id = |input: &mut Input<'_>| ids[usize::from(input.u8()) % ids.len()];
        let pick_handle =
            |input: &mut Input<'_>| handles[usize::from(input.u8()) % handles.len().max(1)];
        let dest = ids[honest[usize::from(input.u8()) % honest.len()]];
        let msg = match op % 14 {
            0 => Forged::NewSessionMaster {
                failed: vec![pick_id(&mut input)],
            },
            1 => Forged::StationGone {
                id: pick_id(&mut input),
                failed: input.u8() & 1 == 1,
            },
            2 => Forged::MasterChanged {
                handle: pick_handle(&mut input),
                master: pick_id(&mut input),
            },
            3 => Forged::Migrate {
                handle: pick_handle(&mut input),
                data: input.take(usize::from(input_len(op))),
                dup_set: vec![pick_id(&mut input)],
            },
            4 => Forged::Create {
                handle: pick_handle(&mut input),
                master: pick_id(&mut input),
                data: input.take(usize::from(input_len(op))),
            },
            5 => Forged::Delete {
                handle: pick_handle(&mut input),
            },
            6 => Forged::Update {
                handle: pick_handle(&mut input),
                data: input.take(usize::from(input_len(op))),
            },
            7 => Forged::Action {
                handle: pick_handle(&mut input),
                method: u16::from(input.u8() % 4),
                args: input.take(4),
                forward: input.u8() & 1 == 1,
            },
            8 => Forged::RmcReply {
                call: u64::from(input.u8()),
                outcome: crate::Outcome::TargetValidationFailure,
                result: Vec::new(),
                master_hint: pick_id(&mut input),
            },
            9 => Forged::Reattach {
                station: pick_id(&mut input),
                relay: pick_id(&mut input),
            },
            10 => Forged::CreateRoom {
                request: u64::from(input.u8()),
                properties: vec![("k".into(), "v".into())],
            },
            11 => Forged::RoomMigrateStart {
                room: pick_handle(&mut input),
                epoch: u32::from(input.u8()),
            },
            12 => {
                c.run_for(Duration::from_millis(u64::from(input.u8())));
                continue;
            }
            _ => {
                let len = usize::from(input.u8() % 64);
                Forged::Raw(input.take(len))
            }
        };
        let now = c.now();
        if std::env::var_os("NETZ_INSIDE_TRACE").is_some() {
            eprintln!("step {steps}: {msg:?} -> {dest}");
        }
        if c.station(cheater).is_in_session() {
            let _ = send_as(c.station_mut(cheater), now, dest, msg);
        }
        c.run_for(Duration::from_millis(20));
        check_inside(&c, &honest, master, &owned);
    }
    c.run_for(Duration::from_millis(500));
    check_inside(&c, &honest, master, &owned);
}

/// How many bytes of dataset data a forged message takes from the input.
fn input_len(op: u8) -> u8 {
    op / 14
}

fn check_inside(
    c: &Cluster,
    honest: &[usize],
    master: crate::StationId,
    owned: &[(crate::DOHandle, crate::StationId)],
) {
    for &i in honest {
        let st = c.station(i);
        assert!(st.is_in_session(), "honest station {i} was put out");
        assert_eq!(
            st.session_master(),
            master,
            "station {i} believes another session master"
        );
        for &(h, m) in owned {
            if let Some(seen) = st.master_of(h) {
                assert_eq!(seen, m, "station {i} believes {h:?} is mastered by {seen}");
            } else {
                panic!("station {i} lost {h:?}");
            }
        }
    }
}

//! The replication scenario written for naia 0.24 with its native UDP
//! transport (`transport_udp`: an HTTP handshake over TCP, then plaintext
//! UDP): one server, 8 clients, 1,000 entities whose 7 fields all change
//! every tick, on loopback.
//!
//! The server runs on one thread and the 8 clients on another, each a plain
//! loop over naia's calls (naia is poll-based: a loop pass that found
//! nothing to do sleeps 20 µs). A tick changes every field of every entity,
//! calls `send_all_updates` and then polls until every client reported an
//! update event for every entity (or 500 ms passed).
//!
//! Why 0.24 and not 0.25, the latest: with 0.25's UDP transport no client
//! ever connects. Its client synchronizes time during the handshake with
//! `Ping` packets and waits for the `Pong`s, but 0.25's main server hands
//! `Ping`s on to the world server (which answers them) only from addresses
//! whose connection is already finalized, and the connection is finalized
//! only after the time synchronization: the pings are dropped, the client
//! stays `Connecting`. 0.24 has no such split and connects.
//!
//! naia's UDP client binds its socket to the address of the host's default
//! route, not to the loopback: see [`loopback_only`].

use super::naia_world::{Entity, World};
use super::{thread_cpu, PeerReplication};
use crate::alloc;
use naia_client::{Client, ClientConfig, SpawnEntityEvent, UpdateComponentEvent};
use naia_server::transport::udp::{ServerAddrs, Socket as ServerSocket};
use naia_server::transport::{
    AuthReceiver, AuthSender, PacketReceiver, PacketSender, SendError, Socket as TransportSocket,
};
use naia_server::{AuthEvent, ConnectEvent, Server, ServerConfig};
use naia_shared::Protocol;
use std::net::{SocketAddr, TcpListener, UdpSocket};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

mod component {
    // The derive's constructors carry no documentation of their own.
    #![allow(missing_docs)]
    use naia_shared::{Message, Property, Replicate};

    /// What a client sends with its handshake; the server admits everyone.
    #[derive(Message)]
    pub struct NaiaAuth {
        /// Unused.
        pub id: u8,
    }

    /// The seven fields of the netz benchmark's `Motion` dataset, as a naia
    /// component.
    #[derive(Replicate)]
    pub struct NaiaMotion {
        /// Position, x.
        pub x: Property<f32>,
        /// Position, y.
        pub y: Property<f32>,
        /// Position, z.
        pub z: Property<f32>,
        /// Velocity, x.
        pub vx: Property<f32>,
        /// Velocity, y.
        pub vy: Property<f32>,
        /// Velocity, z.
        pub vz: Property<f32>,
        /// Health points.
        pub hp: Property<i32>,
    }

    impl NaiaMotion {
        pub(super) fn zero() -> NaiaMotion {
            NaiaMotion::new_complete(0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 100)
        }

        /// Moves the entity one step: every field changes (as `Motion::step`).
        pub(super) fn step(&mut self, tick: u32) {
            let t = tick as f32;
            *self.x += 1.0 + t;
            *self.y += 2.0;
            *self.z += 3.0;
            *self.vx = t * 0.5;
            *self.vy = -t;
            *self.vz = t + 0.25;
            *self.hp = 100 + (tick % 50) as i32;
        }
    }
}
pub use component::{NaiaAuth, NaiaMotion};

/// How to run the naia scenario where naia's client would leave the
/// loopback.
pub const NAMESPACE_HINT: &str = "sudo unshare -n sh -c 'ip link set lo up && ip route add default dev lo src 127.0.0.1 && ./target/release/compare --only peers'";

/// naia's UDP client binds its socket to the address of the host's default
/// route (`find_my_ip_address`: the local address of a UDP socket
/// connected towards 8.8.8.8), not to the server's loopback. The scenario
/// runs only where that address is a loopback one: a default route through
/// `lo` only, as in a network namespace of its own (see
/// [`NAMESPACE_HINT`]). Reads `/proc/net/route`; sends nothing.
pub fn loopback_only() -> Result<(), String> {
    let routes = std::fs::read_to_string("/proc/net/route").unwrap_or_default();
    let defaults: Vec<&str> = routes
        .lines()
        .skip(1)
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f.len() > 7 && f[1] == "00000000" && f[7] == "00000000").then_some(f[0])
        })
        .collect();
    match defaults.as_slice() {
        [] => Err("no default route: naia's UDP client cannot pick an address to bind".into()),
        ifaces if ifaces.iter().all(|i| *i == "lo") => Ok(()),
        ifaces => Err(format!(
            "naia's UDP client binds the address of the default route (through {}), not the loopback; run in a network namespace whose default route is the loopback: {NAMESPACE_HINT}",
            ifaces.join(", ")
        )),
    }
}

fn protocol() -> Protocol {
    Protocol::builder()
        .tick_interval(Duration::from_millis(50))
        .add_default_channels()
        .add_component::<NaiaMotion>()
        .add_message::<NaiaAuth>()
        .build()
}

fn free_port() -> u16 {
    let s = UdpSocket::bind("127.0.0.1:0").expect("udp bind");
    let t = TcpListener::bind(s.local_addr().expect("addr")).ok();
    let port = s.local_addr().expect("addr").port();
    drop(t);
    port
}

fn server_config() -> ServerConfig {
    ServerConfig {
        require_auth: false,
        ..ServerConfig::default()
    }
}

fn client_config() -> ClientConfig {
    ClientConfig::default()
}

/// naia's UDP server socket, counting the bytes of the datagrams it sends.
struct CountingSocket {
    inner: ServerSocket,
    sent: Arc<AtomicU64>,
}

struct CountingSender {
    inner: Box<dyn PacketSender>,
    sent: Arc<AtomicU64>,
}

impl PacketSender for CountingSender {
    fn send(&self, address: &SocketAddr, payload: &[u8]) -> Result<(), SendError> {
        self.inner.send(address, payload)?;
        self.sent.fetch_add(payload.len() as u64, Ordering::Relaxed);
        Ok(())
    }
}

impl TransportSocket for CountingSocket {
    fn listen(
        self: Box<Self>,
    ) -> (
        Box<dyn AuthSender>,
        Box<dyn AuthReceiver>,
        Box<dyn PacketSender>,
        Box<dyn PacketReceiver>,
    ) {
        let (a, b, sender, d) = Box::new(self.inner).listen();
        let sender = Box::new(CountingSender {
            inner: sender,
            sent: self.sent,
        });
        (a, b, sender, d)
    }
}

impl From<CountingSocket> for Box<dyn TransportSocket> {
    fn from(s: CountingSocket) -> Self {
        Box::new(s)
    }
}

/// A listening server with `entities` entities in one room.
struct NaiaServer {
    server: Server<Entity>,
    world: World,
    entities: Vec<Entity>,
    room: naia_server::RoomKey,
    auth_url: String,
    sent: Arc<AtomicU64>,
}

impl NaiaServer {
    fn start(entities: usize) -> NaiaServer {
        let (auth, udp) = (free_port(), free_port());
        let auth_addr: SocketAddr = format!("127.0.0.1:{auth}").parse().expect("addr");
        let udp_addr: SocketAddr = format!("127.0.0.1:{udp}").parse().expect("addr");
        let mut server = Server::<Entity>::new(server_config(), protocol());
        let sent = Arc::new(AtomicU64::new(0));
        server.listen(CountingSocket {
            inner: ServerSocket::new(
                &ServerAddrs::new(auth_addr, udp_addr, &format!("http://{udp_addr}")),
                None,
            ),
            sent: sent.clone(),
        });
        let room = server.make_room().key();
        let mut s = NaiaServer {
            server,
            world: World::default(),
            entities: Vec::new(),
            room,
            auth_url: format!("http://{auth_addr}"),
            sent,
        };
        s.spawn(entities);
        s
    }

    /// Spawns `n` more entities into the room.
    fn spawn(&mut self, n: usize) {
        for _ in 0..n {
            let e = self
                .server
                .spawn_entity(&mut self.world)
                .insert_component(NaiaMotion::zero())
                .id();
            self.server.room_mut(&self.room).add_entity(&e);
            self.entities.push(e);
        }
    }

    /// One pass: receive, process, admit new users, scope, send. Returns
    /// the bytes sent.
    fn pass(&mut self) -> u64 {
        let s = &mut self.server;
        let before = self.sent.load(Ordering::Relaxed);
        let mut events = s.receive(&mut self.world);
        // naia 0.24 asks the application about every handshake
        // (`require_auth` is not consulted): admit everyone.
        for (user, _) in events.read::<AuthEvent<NaiaAuth>>() {
            s.accept_connection(&user);
        }
        for user in events.read::<ConnectEvent>() {
            s.room_mut(&self.room).add_user(&user);
        }
        for (_, user, e) in s.scope_checks() {
            s.user_scope_mut(&user).include(&e);
        }
        s.send_all_updates(&self.world);
        self.sent.load(Ordering::Relaxed) - before
    }

    fn step_all(&mut self, tick: u32) {
        for e in &self.entities {
            if let Some(m) = self.world.get_mut::<NaiaMotion>(*e) {
                m.step(tick);
            }
        }
    }
}

/// A client and its world.
struct NaiaClient {
    client: Client<Entity>,
    world: World,
}

impl NaiaClient {
    fn connect(auth_url: &str) -> NaiaClient {
        let mut client = Client::<Entity>::new(client_config(), protocol());
        client.auth(NaiaAuth { id: 0 });
        client.connect(naia_client::transport::udp::Socket::new(auth_url, None));
        NaiaClient {
            client,
            world: World::default(),
        }
    }

    /// One pass; returns (entities spawned, component updates applied).
    fn pass(&mut self) -> (u64, u64) {
        let mut events = self.client.receive(&mut self.world);
        let spawned = events.read::<SpawnEntityEvent>().count() as u64;
        let updated = events.read::<UpdateComponentEvent<NaiaMotion>>().count() as u64;
        (spawned, updated)
    }
}

#[derive(Default)]
struct Progress {
    spawned: AtomicU64,
    updated: AtomicU64,
    client_cpu_ns: AtomicU64,
    stop: AtomicBool,
}

/// Runs the scenario: `rounds` rounds of `ticks` ticks (after one warm-up
/// round), `clients` clients, `entities` entities.
pub fn replication(
    clients: usize,
    entities: usize,
    rounds: usize,
    ticks: usize,
) -> PeerReplication {
    if let Err(why) = loopback_only() {
        let mut r = PeerReplication::new("naia 0.24 (UDP)");
        r.failure = Some(why);
        return r;
    }
    let mut server = NaiaServer::start(entities);
    let progress = Arc::new(Progress::default());
    let url = server.auth_url.clone();
    let p = progress.clone();
    let client_thread = std::thread::Builder::new()
        .name("naia-clients".into())
        .spawn(move || {
            let mut cs: Vec<NaiaClient> = (0..clients).map(|_| NaiaClient::connect(&url)).collect();
            let mut passes = 0u64;
            while !p.stop.load(Ordering::Relaxed) {
                let mut busy = false;
                for c in &mut cs {
                    let (s, u) = c.pass();
                    busy |= s + u > 0;
                    p.spawned.fetch_add(s, Ordering::Relaxed);
                    p.updated.fetch_add(u, Ordering::Relaxed);
                }
                passes += 1;
                if !busy || passes % 16 == 0 {
                    p.client_cpu_ns
                        .store(thread_cpu().as_nanos() as u64, Ordering::Relaxed);
                }
                if !busy {
                    std::thread::sleep(Duration::from_micros(20));
                }
            }
        })
        .expect("a thread for the clients");
    let mut r = PeerReplication::new("naia 0.24 (UDP)");
    // Connect and spawn everything on every client.
    let want = (clients * entities) as u64;
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while progress.spawned.load(Ordering::Relaxed) < want {
        server.pass();
        std::thread::sleep(Duration::from_micros(200));
        if std::time::Instant::now() > deadline {
            r.failure = Some(format!(
                "only {} of {want} entities reached the clients within 60 s",
                progress.spawned.load(Ordering::Relaxed)
            ));
            progress.stop.store(true, Ordering::Relaxed);
            let _ = client_thread.join();
            return r;
        }
    }
    let mut tick = 0u32;
    for round in 0..=rounds {
        eprint!("\rnaia round {round}/{rounds}   ");
        let (cpu0, ccpu0) = (thread_cpu(), progress.client_cpu_ns.load(Ordering::Relaxed));
        let u0 = progress.updated.load(Ordering::Relaxed);
        let start = std::time::Instant::now();
        let mut bytes = 0u64;
        let mut incomplete = 0;
        for _ in 0..ticks {
            tick += 1;
            server.step_all(tick);
            let target = progress.updated.load(Ordering::Relaxed) + want;
            let t0 = std::time::Instant::now();
            bytes += server.pass();
            while progress.updated.load(Ordering::Relaxed) < target {
                if t0.elapsed() > Duration::from_millis(500) {
                    incomplete += 1;
                    break;
                }
                std::thread::sleep(Duration::from_micros(20));
                bytes += server.pass();
            }
        }
        let secs = start.elapsed().as_secs_f64();
        // Let the client thread publish its CPU time after the last tick.
        std::thread::sleep(Duration::from_millis(2));
        let delivered = progress.updated.load(Ordering::Relaxed) - u0;
        let server_cpu = (thread_cpu() - cpu0).as_nanos() as f64;
        let client_cpu = progress
            .client_cpu_ns
            .load(Ordering::Relaxed)
            .saturating_sub(ccpu0) as f64;
        if round == 0 {
            continue;
        }
        r.push_round(
            clients, secs, delivered, bytes, server_cpu, client_cpu, incomplete,
        );
    }
    eprintln!();
    progress.stop.store(true, Ordering::Relaxed);
    let _ = client_thread.join();
    r
}

/// Heap kept per entity by a naia server with one client and by that
/// client, once `entities` entities reached it (counting allocator; one
/// thread): the growth from the connected, empty session, minus the
/// component itself. `None` if the entities did not all arrive.
pub fn memory(entities: usize) -> Option<(f64, f64)> {
    loopback_only().ok()?;
    alloc::set_enabled(true);
    let mut server = alloc::attribute(1, || NaiaServer::start(0));
    let mut client = alloc::attribute(2, || NaiaClient::connect(&server.auth_url));
    let settle = |server: &mut NaiaServer, client: &mut NaiaClient, passes: usize| {
        let mut spawned = 0;
        for _ in 0..passes {
            alloc::attribute(1, || server.pass());
            spawned += alloc::attribute(2, || client.pass()).0;
            std::thread::sleep(Duration::from_millis(1));
        }
        spawned
    };
    // Connect (the handshake takes a few pings).
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while client.client.connection_status() != naia_client::ConnectionStatus::Connected {
        settle(&mut server, &mut client, 1);
        if std::time::Instant::now() > deadline {
            alloc::set_enabled(false);
            return None;
        }
    }
    settle(&mut server, &mut client, 100);
    let (s0, c0) = (alloc::net(1), alloc::net(2));
    alloc::attribute(1, || server.spawn(entities));
    let mut spawned = 0;
    while spawned < entities as u64
        && std::time::Instant::now() < deadline + Duration::from_secs(60)
    {
        spawned += settle(&mut server, &mut client, 1);
    }
    settle(&mut server, &mut client, 200);
    let own = std::mem::size_of::<NaiaMotion>() as f64;
    let s = (alloc::net(1) - s0) as f64 / entities as f64 - own;
    let c = (alloc::net(2) - c0) as f64 / entities as f64 - own;
    alloc::set_enabled(false);
    (spawned >= entities as u64).then_some((s, c))
}

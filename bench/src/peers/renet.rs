//! renet 2's reliable ordered channel over plain non-blocking UDP sockets on
//! loopback (renet itself has no transport; its netcode transport would add
//! encryption, which netz's default configuration does not have either):
//! one client, one server, one thread.

use renet::{ConnectionConfig, DefaultChannel, RenetClient, RenetServer};
use std::cell::RefCell;
use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

const CLIENT: u64 = 1;

fn config() -> ConnectionConfig {
    ConnectionConfig {
        // Far above what a batch needs: the budget per update never holds
        // messages back.
        available_bytes_per_tick: 10_000_000,
        ..ConnectionConfig::default()
    }
}

struct Inner {
    client: RenetClient,
    server: RenetServer,
    client_socket: UdpSocket,
    server_socket: UdpSocket,
    client_addr: SocketAddr,
    last: Instant,
    buf: Vec<u8>,
    client_bytes: u64,
    received: u64,
}

/// A connected renet client and server.
pub struct RenetPair {
    inner: RefCell<Inner>,
}

impl RenetPair {
    /// Binds both sockets and connects the client.
    pub fn start() -> RenetPair {
        let server_socket = UdpSocket::bind("127.0.0.1:0").expect("udp bind");
        let client_socket = UdpSocket::bind("127.0.0.1:0").expect("udp bind");
        client_socket
            .connect(server_socket.local_addr().expect("addr"))
            .expect("udp connect");
        server_socket.set_nonblocking(true).expect("non-blocking");
        client_socket.set_nonblocking(true).expect("non-blocking");
        let mut server = RenetServer::new(config());
        server.add_connection(CLIENT);
        let mut client = RenetClient::new(config());
        client.set_connected();
        RenetPair {
            inner: RefCell::new(Inner {
                client,
                server,
                client_addr: client_socket.local_addr().expect("addr"),
                client_socket,
                server_socket,
                last: Instant::now(),
                buf: vec![0u8; 65_536],
                client_bytes: 0,
                received: 0,
            }),
        }
    }

    /// `batches` batches of `batch` messages, each sent at once and pumped
    /// until the server received all of it: messages per second and the
    /// client's UDP bytes per message.
    pub fn run(&self, batch: usize, batches: usize) -> (f64, f64) {
        let mut s = self.inner.borrow_mut();
        let b0 = s.client_bytes;
        let start = Instant::now();
        let mut sent = 0u64;
        for _ in 0..batches {
            let target = s.received + batch as u64;
            for i in 0..batch {
                if s.client
                    .can_send_message(DefaultChannel::ReliableOrdered, 4)
                {
                    s.client.send_message(
                        DefaultChannel::ReliableOrdered,
                        (i as i32).to_le_bytes().to_vec(),
                    );
                    sent += 1;
                }
            }
            let deadline = Instant::now() + Duration::from_secs(10);
            while s.received < target && Instant::now() < deadline {
                if !s.pump() {
                    std::thread::yield_now();
                }
            }
        }
        let secs = start.elapsed().as_secs_f64();
        (
            sent as f64 / secs,
            (s.client_bytes - b0) as f64 / sent.max(1) as f64,
        )
    }
}

impl Inner {
    /// One pass of both sides; returns whether anything moved.
    fn pump(&mut self) -> bool {
        let now = Instant::now();
        let dt = now - self.last;
        self.last = now;
        let mut moved = false;
        self.client.update(dt);
        for p in self.client.get_packets_to_send() {
            if self.client_socket.send(&p).is_ok() {
                self.client_bytes += p.len() as u64;
            }
            moved = true;
        }
        while let Ok((n, _)) = self.server_socket.recv_from(&mut self.buf) {
            self.server.process_packet_from(&self.buf[..n], CLIENT).ok();
            moved = true;
        }
        self.server.update(dt);
        while self
            .server
            .receive_message(CLIENT, DefaultChannel::ReliableOrdered)
            .is_some()
        {
            self.received += 1;
        }
        if let Ok(packets) = self.server.get_packets_to_send(CLIENT) {
            for p in packets {
                let _ = self.server_socket.send_to(&p, self.client_addr);
                moved = true;
            }
        }
        while let Ok(n) = self.client_socket.recv(&mut self.buf) {
            self.client.process_packet(&self.buf[..n]);
            moved = true;
        }
        moved
    }
}

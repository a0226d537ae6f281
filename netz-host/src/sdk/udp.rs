//! The client side of the query protocols: a socket bound for a server's
//! address family, and receives bounded by one deadline.

use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::time::Instant;

/// A socket on the loopback of `server`'s family, connected to it.
pub fn client_socket(server: SocketAddr) -> io::Result<UdpSocket> {
    let bind: SocketAddr = if server.is_ipv6() {
        "[::]:0".parse().expect("valid address")
    } else {
        "0.0.0.0:0".parse().expect("valid address")
    };
    let sock = UdpSocket::bind(bind)?;
    sock.connect(server)?;
    Ok(sock)
}

/// Receives one datagram before `deadline`.
pub fn recv_until(sock: &UdpSocket, deadline: Instant, what: &str) -> io::Result<Vec<u8>> {
    let left = deadline.saturating_duration_since(Instant::now());
    if left.is_zero() {
        return Err(io::Error::new(
            io::ErrorKind::TimedOut,
            format!("{what} query timed out"),
        ));
    }
    sock.set_read_timeout(Some(left))?;
    let mut buf = vec![0u8; 65536];
    let n = sock.recv(&mut buf)?;
    buf.truncate(n);
    Ok(buf)
}

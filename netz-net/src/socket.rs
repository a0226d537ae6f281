//! The datagram socket a station is driven over.

use async_trait::async_trait;
use std::io;
use std::net::SocketAddr;

/// A datagram socket: a real UDP socket, or an in-memory one
/// ([`crate::simnet::SimSocket`]) for tests under a simulated network.
///
/// `recv_from` must be cancellation-safe: the driver polls it in a
/// `select!`, and a dropped call must not lose a datagram.
#[async_trait]
pub trait DatagramSocket: Send + Sync + 'static {
    /// Sends `buf` to `target`.
    async fn send_to(&self, buf: &[u8], target: SocketAddr) -> io::Result<usize>;
    /// Receives one datagram into `buf`; returns its length and sender.
    async fn recv_from(&self, buf: &mut [u8]) -> io::Result<(usize, SocketAddr)>;
    /// The address the socket is bound to.
    fn local_addr(&self) -> io::Result<SocketAddr>;
}

#[async_trait]
impl DatagramSocket for tokio::net::UdpSocket {
    async fn send_to(&self, buf: &[u8], target: SocketAddr) -> io::Result<usize> {
        tokio::net::UdpSocket::send_to(self, buf, target).await
    }
    async fn recv_from(&self, buf: &mut [u8]) -> io::Result<(usize, SocketAddr)> {
        tokio::net::UdpSocket::recv_from(self, buf).await
    }
    fn local_addr(&self) -> io::Result<SocketAddr> {
        tokio::net::UdpSocket::local_addr(self)
    }
}

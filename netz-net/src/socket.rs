//! The datagram socket a station is driven over.

use async_trait::async_trait;
use std::io;
use std::net::SocketAddr;
use std::task::{ready, Context, Poll};

/// A datagram socket: a real UDP socket, or an in-memory one
/// ([`crate::simnet::SimSocket`]) for tests under a simulated network.
///
/// `recv_from` must be cancellation-safe: the driver polls it in a
/// `select!`, and a dropped call must not lose a datagram.
///
/// The non-blocking `try_send_to` and `try_recv_from` are optional: a
/// socket that can send or receive at once without waiting implements them,
/// and the driver then sends a call's datagrams from the calling task while
/// it is idle itself, and takes every datagram already waiting after one it
/// awaited. Their defaults report [`io::ErrorKind::WouldBlock`], and the
/// driver falls back to the async methods. So is `poll_recv_from`: a socket
/// that implements it spares the driver a future (an allocation) per
/// datagram it awaits.
#[async_trait]
pub trait DatagramSocket: Send + Sync + 'static {
    /// Sends `buf` to `target`.
    async fn send_to(&self, buf: &[u8], target: SocketAddr) -> io::Result<usize>;
    /// Receives one datagram into `buf`; returns its length and sender.
    async fn recv_from(&self, buf: &mut [u8]) -> io::Result<(usize, SocketAddr)>;
    /// The address the socket is bound to.
    fn local_addr(&self) -> io::Result<SocketAddr>;
    /// Sends `buf` to `target` if that can be done without waiting;
    /// [`io::ErrorKind::WouldBlock`] otherwise (the default: never).
    fn try_send_to(&self, buf: &[u8], target: SocketAddr) -> io::Result<usize> {
        let _ = (buf, target);
        Err(io::ErrorKind::WouldBlock.into())
    }
    /// Receives a datagram that is already waiting;
    /// [`io::ErrorKind::WouldBlock`] when none is (the default: never).
    fn try_recv_from(&self, buf: &mut [u8]) -> io::Result<(usize, SocketAddr)> {
        let _ = buf;
        Err(io::ErrorKind::WouldBlock.into())
    }
    /// Polls for a datagram into `buf`, as `recv_from` does, registering
    /// `cx`'s waker when none is waiting; [`io::ErrorKind::Unsupported`]
    /// when the socket cannot be polled (the default: the driver then
    /// awaits `recv_from`).
    fn poll_recv_from(
        &self,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<(usize, SocketAddr)>> {
        let _ = (cx, buf);
        Poll::Ready(Err(io::ErrorKind::Unsupported.into()))
    }
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
    fn try_send_to(&self, buf: &[u8], target: SocketAddr) -> io::Result<usize> {
        tokio::net::UdpSocket::try_send_to(self, buf, target)
    }
    fn try_recv_from(&self, buf: &mut [u8]) -> io::Result<(usize, SocketAddr)> {
        tokio::net::UdpSocket::try_recv_from(self, buf)
    }
    fn poll_recv_from(
        &self,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<(usize, SocketAddr)>> {
        let mut read = tokio::io::ReadBuf::new(buf);
        let from = ready!(tokio::net::UdpSocket::poll_recv_from(self, cx, &mut read))?;
        Poll::Ready(Ok((read.filled().len(), from)))
    }
}

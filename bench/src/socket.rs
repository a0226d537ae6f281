//! A UDP socket that counts the bytes and datagrams it sends, for measuring
//! what a [`netz_net::NetStation`] puts on the wire.

use async_trait::async_trait;
use netz_net::DatagramSocket;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// Bytes and datagrams sent through one or more [`CountingSocket`]s.
#[derive(Debug, Default)]
pub struct WireCounter {
    /// UDP payload bytes sent.
    pub bytes: AtomicU64,
    /// Datagrams sent.
    pub datagrams: AtomicU64,
}

impl WireCounter {
    /// `(bytes, datagrams)` so far.
    pub fn get(&self) -> (u64, u64) {
        (
            self.bytes.load(Ordering::Relaxed),
            self.datagrams.load(Ordering::Relaxed),
        )
    }
}

/// A tokio UDP socket whose sends are counted.
#[derive(Debug)]
pub struct CountingSocket {
    inner: tokio::net::UdpSocket,
    counter: Arc<WireCounter>,
}

impl CountingSocket {
    /// Binds `addr` and counts into `counter`.
    pub async fn bind(addr: SocketAddr, counter: Arc<WireCounter>) -> io::Result<CountingSocket> {
        Ok(CountingSocket {
            inner: tokio::net::UdpSocket::bind(addr).await?,
            counter,
        })
    }
}

#[async_trait]
impl DatagramSocket for CountingSocket {
    async fn send_to(&self, buf: &[u8], target: SocketAddr) -> io::Result<usize> {
        let n = self.inner.send_to(buf, target).await?;
        self.counter.bytes.fetch_add(n as u64, Ordering::Relaxed);
        self.counter.datagrams.fetch_add(1, Ordering::Relaxed);
        Ok(n)
    }
    async fn recv_from(&self, buf: &mut [u8]) -> io::Result<(usize, SocketAddr)> {
        self.inner.recv_from(buf).await
    }
    fn local_addr(&self) -> io::Result<SocketAddr> {
        self.inner.local_addr()
    }
    fn try_send_to(&self, buf: &[u8], target: SocketAddr) -> io::Result<usize> {
        let n = self.inner.try_send_to(buf, target)?;
        self.counter.bytes.fetch_add(n as u64, Ordering::Relaxed);
        self.counter.datagrams.fetch_add(1, Ordering::Relaxed);
        Ok(n)
    }
    fn try_recv_from(&self, buf: &mut [u8]) -> io::Result<(usize, SocketAddr)> {
        self.inner.try_recv_from(buf)
    }
    fn poll_recv_from(
        &self,
        cx: &mut std::task::Context<'_>,
        buf: &mut [u8],
    ) -> std::task::Poll<io::Result<(usize, SocketAddr)>> {
        DatagramSocket::poll_recv_from(&self.inner, cx, buf)
    }
}

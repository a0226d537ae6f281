//! netz's sequential RMC alone or the tokio ping-pong alone on a
//! current-thread runtime, for counting syscalls and profiling:
//! `cargo run --release --example rmc_solo -- netz|tokio [CALLS]`.

use netz_bench::classes::{registry, Unit};
use netz_core::{ProcessType, RmcContext};
use netz_net::{NetConfig, NetStation};
use std::time::{Duration, Instant};

#[allow(unsafe_code)]
mod counting {
    use std::alloc::{GlobalAlloc, Layout, System};
    use std::sync::atomic::{AtomicU64, Ordering};
    /// Allocations made so far.
    pub static ALLOCS: AtomicU64 = AtomicU64::new(0);
    /// The system allocator, counting allocations.
    pub struct Counting;
    // SAFETY: forwarded to the system allocator unchanged.
    unsafe impl GlobalAlloc for Counting {
        unsafe fn alloc(&self, l: Layout) -> *mut u8 {
            ALLOCS.fetch_add(1, Ordering::Relaxed);
            // SAFETY: the caller's guarantees.
            unsafe { System.alloc(l) }
        }
        unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
            // SAFETY: the caller's guarantees.
            unsafe { System.dealloc(p, l) }
        }
        unsafe fn realloc(&self, p: *mut u8, l: Layout, n: usize) -> *mut u8 {
            ALLOCS.fetch_add(1, Ordering::Relaxed);
            // SAFETY: the caller's guarantees.
            unsafe { System.realloc(p, l, n) }
        }
    }
}

#[global_allocator]
static A: counting::Counting = counting::Counting;

fn allocs() -> u64 {
    counting::ALLOCS.load(std::sync::atomic::Ordering::Relaxed)
}

/// Nanoseconds this thread has run on a CPU (Linux schedstat).
fn cpu_ns() -> u64 {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

fn report(name: &str, wall: Duration, cpu: u64, calls: usize, a: u64) {
    println!(
        "{name} {:.2} µs wall, {:.2} µs cpu, {:.2} allocations per call",
        wall.as_secs_f64() * 1e6 / calls as f64,
        cpu as f64 / 1e3 / calls as f64,
        a as f64 / calls as f64
    );
}

fn main() {
    let mut args = std::env::args().skip(1);
    let which = args.next().unwrap_or_else(|| "netz".into());
    let calls: usize = args.next().and_then(|v| v.parse().ok()).unwrap_or(100_000);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async move {
        if which == "tokio" {
            let server = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
            let addr = server.local_addr().unwrap();
            tokio::spawn(async move {
                let mut buf = vec![0u8; 2048];
                while let Ok((n, from)) = server.recv_from(&mut buf).await {
                    let _ = server.send_to(&buf[..n], from).await;
                }
            });
            let client = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
            client.connect(addr).await.unwrap();
            let t = tokio::spawn(async move {
                let mut buf = vec![0u8; 2048];
                let msg = [0u8; 37];
                let (start, c0, a0) = (Instant::now(), cpu_ns(), allocs());
                for _ in 0..calls {
                    client.send(&msg).await.unwrap();
                    client.recv(&mut buf).await.unwrap();
                }
                (start.elapsed(), cpu_ns() - c0, allocs() - a0)
            });
            let (e, c, a) = t.await.unwrap();
            report("tokio", e, c, calls, a);
            return;
        }
        let server = NetStation::bind(
            "127.0.0.1:0".parse().unwrap(),
            NetConfig::new(ProcessType::Server, "server"),
            registry(),
        )
        .await
        .unwrap();
        server.create_session().unwrap();
        let client = NetStation::bind(
            "127.0.0.1:0".parse().unwrap(),
            NetConfig::new(ProcessType::Client, "client"),
            registry(),
        )
        .await
        .unwrap();
        client.join(server.local_addr()).await.unwrap();
        let h = server.publish(Unit::default()).unwrap().handle();
        assert!(
            client
                .wait_until(Duration::from_secs(5), |st| st.contains(h))
                .await
        );
        let t = tokio::spawn(async move {
            let ctx: RmcContext<i32> = RmcContext::on_master();
            let (start, c0, a0) = (Instant::now(), cpu_ns(), allocs());
            for i in 0..calls as i32 {
                client
                    .call(&ctx, |st| st.object::<Unit>(h).call_ping(&ctx, i))
                    .await
                    .unwrap();
            }
            let e = (start.elapsed(), cpu_ns() - c0, allocs() - a0);
            drop(server);
            e
        });
        let (e, c, a) = t.await.unwrap();
        report("netz", e, c, calls, a);
    });
}

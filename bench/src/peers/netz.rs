//! The peers' scenarios written for netz: the replication scenario with the
//! master on one thread and 8 duplica stations on another (each thread one
//! current-thread tokio runtime), and reliable messages as one-way RMCs
//! between two stations on one current-thread runtime.

use super::{thread_cpu, PeerReplication};
use crate::classes::{registry, Motion, Unit};
use crate::socket::{CountingSocket, WireCounter};
use netz_core::rmc::RmcFlag;
use netz_core::{DOHandle, ProcessType, Ref, RmcContext};
use netz_net::{NetConfig, NetStation};
use std::net::SocketAddr;
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

async fn bind(process: ProcessType, token: &str, counter: Arc<WireCounter>) -> NetStation {
    let socket = CountingSocket::bind("127.0.0.1:0".parse().expect("addr"), counter)
        .await
        .expect("netz bind");
    NetStation::with_socket(socket, NetConfig::new(process, token), registry())
        .expect("netz station")
}

fn current_thread() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
}

/// One master, `clients` duplica stations, `objects` units changing every
/// field every tick: `rounds` rounds of `ticks` ticks after a warm-up round.
pub fn replication(clients: usize, objects: usize, rounds: usize, ticks: usize) -> PeerReplication {
    let (addr_tx, addr_rx) = mpsc::channel::<SocketAddr>();
    let (dups_tx, dups_rx) = tokio::sync::oneshot::channel::<Vec<NetStation>>();
    let (cpu_tx, mut cpu_rx) =
        tokio::sync::mpsc::unbounded_channel::<tokio::sync::oneshot::Sender<Duration>>();
    let client_thread = std::thread::Builder::new()
        .name("netz-clients".into())
        .spawn(move || {
            current_thread().block_on(async move {
                let contact = addr_rx.recv().expect("the master's address");
                let mut dups = Vec::new();
                for i in 0..clients {
                    let d = bind(ProcessType::Server, &format!("dup{i}"), Default::default()).await;
                    d.join(contact).await.expect("join");
                    dups.push(d);
                }
                let _ = dups_tx.send(dups.clone());
                // Answer CPU time requests until the master's thread is done.
                while let Some(reply) = cpu_rx.recv().await {
                    let _ = reply.send(thread_cpu());
                }
                drop(dups);
            });
        })
        .expect("a thread for the duplica stations");
    let mut r = PeerReplication::new("netz");
    current_thread().block_on(async {
        let wire = Arc::new(WireCounter::default());
        let master = bind(ProcessType::Server, "master", wire.clone()).await;
        master.create_session().expect("session");
        let _ = addr_tx.send(master.local_addr());
        let dups = dups_rx.await.expect("the duplica stations");
        let refs: Vec<Ref<Unit>> = (0..objects)
            .map(|_| master.publish(Unit::default()).expect("publish"))
            .collect();
        for d in &dups {
            assert!(
                d.wait_until(Duration::from_secs(30), |st| st.duplicas().len() > objects)
                    .await,
                "every unit reached every duplica station"
            );
        }
        let client_cpu = || {
            let (tx, rx) = tokio::sync::oneshot::channel();
            let _ = cpu_tx.send(tx);
            async move { rx.await.unwrap_or_default() }
        };
        let mut tick = 0u32;
        for round in 0..=rounds {
            eprint!("\rnetz replication round {round}/{rounds}   ");
            let (cpu0, ccpu0) = (thread_cpu(), client_cpu().await);
            let (b0, _) = wire.get();
            let applied0: u64 = dups.iter().map(|d| d.stats().updates_applied).sum();
            let start = Instant::now();
            let mut incomplete = 0;
            for _ in 0..ticks {
                tick += 1;
                for u in &refs {
                    u.with(|u| u.motion.step(tick));
                }
                let targets: Vec<u64> = dups
                    .iter()
                    .map(|d| d.stats().updates_applied + objects as u64)
                    .collect();
                master.update_all();
                let waits = dups.iter().zip(&targets).map(|(d, &t)| {
                    d.wait_until(Duration::from_millis(500), move |st| {
                        st.stats().updates_applied >= t
                    })
                });
                incomplete += futures::future::join_all(waits).await.iter().any(|ok| !ok) as usize;
            }
            let secs = start.elapsed().as_secs_f64();
            let delivered = dups.iter().map(|d| d.stats().updates_applied).sum::<u64>() - applied0;
            let (b1, _) = wire.get();
            let server_cpu = (thread_cpu() - cpu0).as_nanos() as f64;
            let client = client_cpu().await.saturating_sub(ccpu0).as_nanos() as f64;
            if round == 0 {
                continue;
            }
            r.push_round(
                clients,
                secs,
                delivered,
                b1 - b0,
                server_cpu,
                client,
                incomplete,
            );
        }
        eprintln!();
        drop(cpu_tx);
        let _ = Motion::FIELDS;
    });
    let _ = client_thread.join();
    r
}

/// A request to the message pair's thread: batch size, batches, where to
/// answer.
type Job = (usize, usize, mpsc::Sender<(f64, f64)>);

/// Two stations on a current-thread runtime of their own thread, the
/// server mastering a unit the client calls one-way.
pub struct MessagePair {
    tx: tokio::sync::mpsc::UnboundedSender<Job>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl MessagePair {
    /// Starts the runtime and the stations.
    pub fn start() -> MessagePair {
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Job>();
        let thread = std::thread::Builder::new()
            .name("netz-messages".into())
            .spawn(move || {
                current_thread().block_on(async move {
                    let wire = Arc::new(WireCounter::default());
                    let server = bind(ProcessType::Server, "server", Default::default()).await;
                    server.create_session().expect("session");
                    let client = bind(ProcessType::Client, "client", wire.clone()).await;
                    client.join(server.local_addr()).await.expect("join");
                    let h = server.publish(Unit::default()).expect("publish").handle();
                    assert!(
                        client
                            .wait_until(Duration::from_secs(5), |st| st.contains(h))
                            .await,
                        "the unit reached the client"
                    );
                    while let Some((batch, batches, reply)) = rx.recv().await {
                        let v = run(&server, &client, h, &wire, batch, batches).await;
                        let _ = reply.send(v);
                    }
                });
            })
            .expect("a thread for the runtime");
        MessagePair {
            tx,
            thread: Some(thread),
        }
    }

    /// `batches` batches of `batch` one-way RMCs, each batch sent at once
    /// and waited for until the server executed all of it: messages per
    /// second and the client's UDP bytes per message.
    pub fn run(&self, batch: usize, batches: usize) -> (f64, f64) {
        let (reply, rx) = mpsc::channel();
        if self.tx.send((batch, batches, reply)).is_err() {
            return (f64::NAN, f64::NAN);
        }
        rx.recv().unwrap_or((f64::NAN, f64::NAN))
    }
}

impl Drop for MessagePair {
    fn drop(&mut self) {
        let (tx, _) = tokio::sync::mpsc::unbounded_channel();
        drop(std::mem::replace(&mut self.tx, tx));
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

async fn run(
    server: &NetStation,
    client: &NetStation,
    h: DOHandle,
    wire: &WireCounter,
    batch: usize,
    batches: usize,
) -> (f64, f64) {
    let (b0, _) = wire.get();
    let start = Instant::now();
    let mut sent = 0u64;
    for _ in 0..batches {
        let target = server.stats().calls_executed + batch as u64;
        client.with(|st, _| {
            for i in 0..batch {
                let ctx: RmcContext<i32> = RmcContext::on_master();
                ctx.set_flag(RmcFlag::OneWayCall);
                if st.object::<Unit>(h).call_ping(&ctx, i as i32) {
                    sent += 1;
                }
            }
        });
        server
            .wait_until(Duration::from_secs(10), |st| {
                st.stats().calls_executed >= target
            })
            .await;
    }
    let secs = start.elapsed().as_secs_f64();
    let (b1, _) = wire.get();
    (sent as f64 / secs, (b1 - b0) as f64 / sent.max(1) as f64)
}

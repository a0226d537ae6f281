//! The fault-injection proxy itself, and sessions of real `netz-station`
//! processes through it: a client joins and plays through loss, jitter and
//! reordering.

mod common;

use common::proxy::{Faults, Proxy};
use common::Proc;
use std::net::{SocketAddr, UdpSocket};
use std::time::Duration;

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// An upstream that answers every datagram with its bytes, and the client's socket.
fn echo_pair() -> (
    std::thread::JoinHandle<Vec<SocketAddr>>,
    SocketAddr,
    UdpSocket,
) {
    let upstream = UdpSocket::bind("127.0.0.1:0").unwrap();
    let addr = upstream.local_addr().unwrap();
    upstream.set_read_timeout(Some(ms(1500))).unwrap();
    let echo = std::thread::spawn(move || {
        let mut seen = Vec::new();
        let mut buf = [0u8; 2048];
        while let Ok((n, from)) = upstream.recv_from(&mut buf) {
            if !seen.contains(&from) {
                seen.push(from);
            }
            if &buf[..n] == b"stop" {
                break;
            }
            let _ = upstream.send_to(&buf[..n], from);
        }
        seen
    });
    let client = UdpSocket::bind("127.0.0.1:0").unwrap();
    client.set_read_timeout(Some(ms(300))).unwrap();
    (echo, addr, client)
}

fn receive_all(client: &UdpSocket) -> Vec<u32> {
    let mut got = Vec::new();
    let mut buf = [0u8; 2048];
    while let Ok((n, _)) = client.recv_from(&mut buf) {
        if n == 4 {
            got.push(u32::from_le_bytes(buf[..4].try_into().unwrap()));
        }
    }
    got
}

#[test]
fn the_proxy_drops_delays_reorders_and_rewrites_addresses() {
    let (echo, upstream, client) = echo_pair();
    let proxy = Proxy::start(
        upstream,
        Faults {
            loss: 0.2,
            delay: (ms(0), ms(40)),
            ..Faults::NONE
        },
        7,
    );
    for i in 0..200u32 {
        client.send_to(&i.to_le_bytes(), proxy.addr()).unwrap();
    }
    let got = receive_all(&client);
    let s = proxy.stats();
    // 20% loss each way: about 64% come back.
    assert!(
        (90..170).contains(&got.len()),
        "{} came back: {s:?}",
        got.len()
    );
    assert_eq!(s.from_client, 200);
    assert!(s.dropped > 40, "{s:?}");
    // The jitter reorders them.
    assert!(got.windows(2).any(|w| w[0] > w[1]), "{got:?}");

    // Duplication and a cut.
    proxy.set_faults(Faults {
        duplicate: 1.0,
        ..Faults::NONE
    });
    client.send_to(&7u32.to_le_bytes(), proxy.addr()).unwrap();
    // Both copies of the request are echoed, each twice.
    assert_eq!(receive_all(&client), vec![7, 7, 7, 7]);
    proxy.set_faults(Faults::NONE);
    proxy.cut_for(ms(400));
    client.send_to(&8u32.to_le_bytes(), proxy.addr()).unwrap();
    assert!(receive_all(&client).is_empty());
    std::thread::sleep(ms(150));
    client.send_to(&9u32.to_le_bytes(), proxy.addr()).unwrap();
    assert_eq!(receive_all(&client), vec![9]);

    // NAT rebinding: the upstream sees the client at a new port.
    let before = proxy.back_addr();
    let after = proxy.rebind();
    assert_ne!(before, after);
    client.send_to(&10u32.to_le_bytes(), proxy.addr()).unwrap();
    assert_eq!(receive_all(&client), vec![10]);
    client.send_to(b"stop", proxy.addr()).unwrap();
    let seen = echo.join().unwrap();
    // The upstream never saw the client itself: only the proxy's ports.
    assert_eq!(seen, vec![before, after]);
    assert_eq!(proxy.stats().rebinds, 1);
}

/// A server, and a client joined through a proxy with `faults`.
fn through_proxy(faults: Faults, seed: u64) -> (Proc, Proxy, Proc) {
    let server = Proc::start(
        "server",
        &[
            "--create",
            "--type",
            "server",
            "--token",
            "server",
            "--publish",
            "0",
        ],
    );
    let proxy = Proxy::start(server.addr.parse().unwrap(), faults, seed);
    let contact = proxy.addr().to_string();
    let client = Proc::start(
        "client",
        &[
            "--join",
            &contact,
            "--type",
            "client",
            "--token",
            "client",
            "--publish",
            "1",
            "--rmc-ms",
            "20000",
        ],
    );
    (server, proxy, client)
}

/// The client plays for a while: updates of its object, RMCs on it.
fn play(server: &mut Proc, client: &mut Proc, rounds: i64) {
    client.until("its object", |p| p.scores().len() == 1);
    let h = client.scores()[0].handle;
    server.until("the client's object", |p| {
        p.scores().iter().any(|s| s.handle == h)
    });
    let mut total = 0;
    for i in 1..=rounds {
        client.send(&format!("set {h} {}", i * 100));
        assert_eq!(client.expect(|l| l == "ok" || l.starts_with("err")), "ok");
        client.send(&format!("add {h} {i}"));
        let line = client.expect(|l| l.starts_with("rmc ") || l.starts_with("err"));
        total = i * 100 + i;
        assert_eq!(
            line,
            format!("rmc outcome=Success result={total}"),
            "{:#?}",
            client.log
        );
        // The call changed the master; the update carries it to the server.
        client.send(&format!("set {h} {total}"));
        assert_eq!(client.expect(|l| l == "ok" || l.starts_with("err")), "ok");
    }
    server.until("the client's last value", |p| {
        p.scores().iter().any(|s| s.handle == h && s.value == total)
    });
    assert_eq!(client.status().stations.len(), 2);
}

// A user-space proxy cannot stand on the path without rewriting addresses
// (it cannot send from the client's address, nor receive what is sent to
// the server's bound address): the server sees the client at the proxy's
// back port, the client sees the server at the proxy's front port, and
// both talk to the other where its datagrams come from.
#[test]
fn a_client_plays_through_loss_and_jitter() {
    let faults = Faults {
        loss: 0.2,
        delay: (ms(0), ms(80)),
        ..Faults::NONE
    };
    let (mut server, proxy, mut client) = through_proxy(faults, 22);
    play(&mut server, &mut client, 20);
    let s = proxy.stats();
    println!("{s:?}");
    assert!(s.dropped > 0 && s.forwarded > 10, "{s:?}");
}

#[test]
fn a_client_keeps_playing_across_a_nat_rebinding() {
    let (mut server, proxy, mut client) = through_proxy(Faults::NONE, 3);
    play(&mut server, &mut client, 3);
    let before = proxy.back_addr();
    let after = proxy.rebind();
    assert_ne!(before, after);
    play(&mut server, &mut client, 3);
}

#[test]
fn a_client_joins_through_an_address_rewriting_proxy() {
    let (mut server, _proxy, mut client) = through_proxy(Faults::NONE, 1);
    play(&mut server, &mut client, 1);
    // Past the failure timeout (1 s with the tests' settings).
    std::thread::sleep(Duration::from_millis(2000));
    assert!(
        !client.log.iter().any(|l| l.starts_with("disconnected")),
        "{:#?}",
        client.log
    );
    play(&mut server, &mut client, 1);
}

#[test]
fn a_client_cut_off_for_two_seconds_keeps_its_identity() {
    // The failure timeout (3 s here) is the grace within which a client
    // whose link was cut comes back as itself: the same station id, its
    // objects, and what it missed, in order.
    let server = Proc::start(
        "server",
        &[
            "--create",
            "--topology",
            "client-server",
            "--type",
            "server",
            "--token",
            "server",
            "--publish",
            "1",
            "--failure-ms",
            "3000",
        ],
    );
    let proxy = Proxy::start(server.addr.parse().unwrap(), Faults::NONE, 5);
    let contact = proxy.addr().to_string();
    let mut client = Proc::start(
        "client",
        &[
            "--join",
            &contact,
            "--topology",
            "client-server",
            "--type",
            "client",
            "--token",
            "client",
            "--publish",
            "1",
            "--failure-ms",
            "3000",
        ],
    );
    let mut server = server;
    client.until("both objects", |p| p.scores().len() == 2);
    let id = client.status().id;
    let theirs = server
        .scores()
        .into_iter()
        .find(|s| s.master == server.id)
        .unwrap()
        .handle;
    let mine = client
        .scores()
        .into_iter()
        .find(|s| s.master == id)
        .unwrap()
        .handle;
    proxy.cut_for(Duration::from_secs(2));
    // What the client misses: ten actions and an update on the server's
    // object while it is cut off.
    for i in 1..=10 {
        server.send(&format!("bump {theirs} {i}"));
        assert_eq!(server.expect(|l| l == "ok" || l.starts_with("err")), "ok");
        std::thread::sleep(Duration::from_millis(100));
    }
    server.send(&format!("set {theirs} 77"));
    assert_eq!(server.expect(|l| l == "ok" || l.starts_with("err")), "ok");
    std::thread::sleep(Duration::from_millis(1500));
    client.until("what it missed", |p| {
        p.send(&format!("seen {theirs}"));
        let l = p.expect(|l| l.starts_with("seen ") || l.starts_with("err"));
        l.ends_with("values=1,2,3,4,5,6,7,8,9,10")
    });
    client.until("the update", |p| {
        p.scores()
            .iter()
            .any(|s| s.handle == theirs && s.value == 77)
    });
    let status = client.status();
    assert_eq!(status.id, id, "the client came back as another station");
    assert_eq!(status.stations.len(), 2);
    assert!(!client
        .log
        .iter()
        .any(|l| l.starts_with("event disconnected")));
    // Its own object is still its own, and the server still has it.
    client.send(&format!("set {mine} 5"));
    assert_eq!(client.expect(|l| l == "ok" || l.starts_with("err")), "ok");
    server.until("the client's object", |p| {
        p.scores()
            .iter()
            .any(|s| s.handle == mine && s.master == id && s.value == 5)
    });
    assert!(!server
        .log
        .iter()
        .any(|l| l.starts_with("event station-failed")));
    assert!(proxy.stats().cut > 0);
}

#[test]
fn a_client_whose_only_server_was_killed_disconnects_within_the_failure_timeout() {
    let mut server = Proc::start(
        "server",
        &[
            "--create",
            "--topology",
            "client-server",
            "--type",
            "server",
            "--token",
            "server",
        ],
    );
    let proxy = Proxy::start(server.addr.parse().unwrap(), Faults::NONE, 6);
    let contact = proxy.addr().to_string();
    let mut client = Proc::start(
        "client",
        &[
            "--join",
            &contact,
            "--topology",
            "client-server",
            "--type",
            "client",
            "--token",
            "client",
            "--publish",
            "1",
        ],
    );
    client.until("its object", |p| p.scores().len() == 1);
    let killed = std::time::Instant::now();
    server.kill();
    client.expect(|l| l.starts_with("event disconnected"));
    // The tests' failure timeout is 1 s; the heartbeat adds at most one
    // interval, the output pipe a little.
    let took = killed.elapsed();
    assert!(took < Duration::from_millis(2500), "{took:?}");
}

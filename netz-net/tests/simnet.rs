//! The driver under a simulated network (the in-memory `SimNet` behind the
//! same socket trait as UDP, on tokio's paused clock): partitions that heal,
//! a station that bounces, 20% loss.

#[path = "../src/bin/netz-station/score.rs"]
mod score;

use netz_core::rmc::RmcContext;
use netz_core::{Event, Outcome, ProcessType, StationId};
use netz_net::simnet::SimNet;
use netz_net::{wait_rmc, Events, NetConfig, NetStation, SessionState};
use score::{registry, Score, ADD};
use std::net::SocketAddr;
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(60);

fn addr(i: usize) -> SocketAddr {
    format!("10.0.0.{}:7000", i + 1).parse().unwrap()
}

fn cfg(i: usize) -> NetConfig {
    let p = if i == 0 {
        ProcessType::Server
    } else {
        ProcessType::Client
    };
    NetConfig::new(p, format!("s{i}"))
        .heartbeat_interval(Duration::from_millis(100))
        .failure_timeout(Duration::from_secs(1))
        .seed(i as u64 + 1, false)
}

async fn start(net: &SimNet, i: usize) -> NetStation {
    NetStation::with_socket(net.bind(addr(i)).unwrap(), cfg(i), registry()).unwrap()
}

/// A session of `n` stations on `net`, station 0 its master.
async fn session(net: &SimNet, n: usize) -> Vec<NetStation> {
    let first = start(net, 0).await;
    first.create_session().unwrap();
    let mut all = vec![first];
    for i in 1..n {
        let s = start(net, i).await;
        s.join(addr(0)).await.unwrap();
        all.push(s);
    }
    for s in &all {
        assert!(s.wait_until(WAIT, |st| st.stations().len() == n).await);
    }
    all
}

fn failures(events: &mut Events) -> Vec<StationId> {
    std::iter::from_fn(|| events.try_recv())
        .filter_map(|e| match e {
            Event::StationFailed(id) => Some(id),
            _ => None,
        })
        .collect()
}

#[tokio::test(start_paused = true)]
async fn a_partition_that_heals_in_time_goes_unnoticed() {
    let net = SimNet::new(1);
    let all = session(&net, 4).await;
    let mut events: Vec<Events> = all.iter().map(|s| s.events()).collect();
    let r = all[0].publish(Score::new(1, "s0", true)).unwrap();
    let h = r.handle();
    for s in &all {
        assert!(s.wait_until(WAIT, |st| st.get::<Score>(h).is_some()).await);
    }
    // Cut {0, 1} from {2, 3} for less than the failure timeout; update meanwhile.
    net.partition(&[addr(0), addr(1)], &[addr(2), addr(3)]);
    r.lock().data.value = 42;
    all[0].update(h).unwrap();
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(
        all[3].read(|st| st.get::<Score>(h).unwrap().lock().data.value),
        1,
        "the partition holds"
    );
    net.heal();
    for s in &all {
        assert!(
            s.wait_until(WAIT, |st| st.get::<Score>(h).unwrap().lock().data.value
                == 42)
                .await
        );
    }
    // Well past the failure timeout: nobody was declared failed.
    tokio::time::sleep(Duration::from_secs(3)).await;
    for (i, e) in events.iter_mut().enumerate() {
        assert_eq!(failures(e), [], "station {i}");
        assert_eq!(all[i].read(|st| st.stations().len()), 4);
    }
    assert!(net.stats().partitioned > 0);
}

#[tokio::test(start_paused = true)]
async fn a_long_partition_removes_the_cut_off_station() {
    let net = SimNet::new(2);
    let all = session(&net, 4).await;
    let kept = all[3].publish(Score::new(5, "s3", true)).unwrap().handle();
    let dropped = all[3].publish(Score::new(6, "s3", false)).unwrap().handle();
    for s in &all {
        assert!(
            s.wait_until(WAIT, |st| st.get::<Score>(dropped).is_some())
                .await
        );
    }
    net.partition(&[addr(3)], &[addr(0), addr(1), addr(2)]);
    for s in &all[..3] {
        assert!(
            s.wait_until(WAIT, |st| st.stations().len() == 3
                && st.master_of(kept) == Some(StationId(1))
                && st.get::<Score>(dropped).is_none())
                .await
        );
        assert_eq!(
            s.read(|st| st.get::<Score>(kept).unwrap().lock().data.value),
            5
        );
    }
    net.heal();
    // The majority stays as it is once the cut-off station comes back.
    tokio::time::sleep(Duration::from_secs(3)).await;
    for s in &all[..3] {
        assert_eq!(s.read(|st| st.stations().len()), 3);
        assert_eq!(s.session_master(), StationId(1));
    }
}

#[tokio::test(start_paused = true)]
async fn a_station_that_bounces_comes_back_with_a_new_id() {
    let net = SimNet::new(3);
    let mut all = session(&net, 3).await;
    let mut events = all[0].events();
    // Station 3 crashes: its driver stops and its socket unbinds.
    drop(all.pop());
    let failed = events
        .wait_for(WAIT, |e| match e {
            Event::StationFailed(id) => Some(*id),
            _ => None,
        })
        .await;
    assert_eq!(failed, Some(StationId(3)));
    // It restarts on the same address and joins again.
    let again = start(&net, 2).await;
    let (id, master) = again.join(addr(0)).await.unwrap();
    assert_eq!((id, master), (StationId(4), StationId(1)));
    all.push(again);
    for s in &all {
        assert!(
            s.wait_until(WAIT, |st| {
                let ids: Vec<u32> = st.stations().iter().map(|i| i.id.0).collect();
                ids == [1, 2, 4]
            })
            .await,
            "{s:?}"
        );
    }
    // And it works: an RMC from the newcomer.
    let h = all[1].publish(Score::new(1, "s1", false)).unwrap().handle();
    assert!(
        all[2]
            .wait_until(WAIT, |st| st.get::<Score>(h).is_some())
            .await
    );
    let ctx: RmcContext<i64> = RmcContext::on_master();
    assert!(all[2].with(|st, _| st.object::<Score>(h).call(&ctx, ADD, &(2i64,))));
    assert_eq!(wait_rmc(&ctx, WAIT).await, Outcome::Success);
    assert_eq!(ctx.result(), Some(3));
}

#[tokio::test(start_paused = true)]
async fn a_session_works_under_twenty_percent_loss() {
    let net = SimNet::new(4);
    net.set_loss(0.2);
    net.set_latency(Duration::from_millis(5), Duration::from_millis(5));
    let all = session(&net, 4).await;
    let mut events: Vec<Events> = all.iter().map(|s| s.events()).collect();
    let handles: Vec<_> = all
        .iter()
        .enumerate()
        .map(|(i, s)| {
            s.publish(Score::new(i as i64, "x", false))
                .unwrap()
                .handle()
        })
        .collect();
    for s in &all {
        assert!(
            s.wait_until(WAIT, |st| handles
                .iter()
                .all(|h| st.get::<Score>(*h).is_some()))
                .await
        );
    }
    // Every station calls every other station's object.
    for (i, s) in all.iter().enumerate() {
        let target = handles[(i + 1) % handles.len()];
        let ctx: RmcContext<i64> = RmcContext::on_master();
        assert!(s.with(|st, _| st.object::<Score>(target).call(&ctx, ADD, &(100i64,))));
        assert_eq!(wait_rmc(&ctx, WAIT).await, Outcome::Success, "station {i}");
    }
    all.iter().for_each(|s| {
        s.update_all();
    });
    for s in &all {
        assert!(
            s.wait_until(WAIT, |st| handles.iter().all(|h| st
                .get::<Score>(*h)
                .unwrap()
                .lock()
                .data
                .value
                >= 100))
                .await
        );
    }
    for (i, e) in events.iter_mut().enumerate() {
        assert_eq!(failures(e), [], "station {i}");
        assert!(matches!(all[i].state(), SessionState::InSession { .. }));
    }
    assert!(net.stats().lost > 0);
}

#[tokio::test(start_paused = true)]
async fn a_station_that_bounces_before_it_is_missed_comes_back() {
    let net = SimNet::new(5);
    let mut all = session(&net, 3).await;
    // Station 3 crashes and restarts on the same address at once, before
    // anybody noticed it was gone.
    drop(all.pop());
    // (The aborted driver releases its socket at the runtime's next turn.)
    tokio::time::sleep(Duration::from_millis(10)).await;
    let again = start(&net, 2).await;
    let (id, _) = again.join(addr(0)).await.unwrap();
    assert!(id.0 > 3, "{id:?}");
    all.push(again);
    for s in &all {
        assert!(
            s.wait_until(WAIT, |st| {
                let ids: Vec<u32> = st.stations().iter().map(|i| i.id.0).collect();
                ids == [1, 2, id.0]
            })
            .await,
            "{s:?}"
        );
    }
}

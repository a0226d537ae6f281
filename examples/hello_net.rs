//! A networked game in one page: a dedicated server and two clients on real
//! UDP sockets (in one process here; each could be its own), an RMC with a
//! return value and an out parameter, an action, and a dataset update.
//!
//! ```sh
//! cargo run --example hello_net
//! ```
use netz::prelude::*;
use std::time::Duration;

/// The arena's replicated state.
#[dataset]
#[derive(Default, Clone, Debug)]
pub struct Score {
    /// Points scored so far.
    pub points: i64,
}

/// The game's one object: mastered by the server, duplicated on the clients.
#[doclass]
#[derive(Default)]
pub struct Arena {
    /// Replicated to every duplica.
    #[dataset]
    pub score: Score,
}

#[doclass]
impl Arena {
    /// An RMC: runs on the master, returns whether `target` was hit and,
    /// through the out parameter, the new score.
    #[rmc]
    pub fn shoot(&mut self, target: u32, #[out] points: &mut i64) -> bool {
        let hit = target % 2 == 0;
        if hit {
            self.score.points += 10;
        }
        *points = self.score.points;
        hit
    }

    /// An action: runs on the master, then on every duplica.
    #[action]
    pub fn cheer(&mut self, who: String) {
        println!("  cheer for {who} (score {})", self.score.points);
    }
}

/// Plays a short round; returns what it printed.
pub async fn play() -> Result<Vec<String>, Box<dyn std::error::Error>> {
    let mut out = Vec::new();
    let mut registry = Registry::new();
    registry.register::<Arena>()?;
    let registry = std::sync::Arc::new(registry);
    let any = "127.0.0.1:0".parse()?;

    // The dedicated server creates the session and publishes the arena.
    let server = NetStation::bind(
        any,
        NetConfig::new(ProcessType::Server, "server"),
        registry.clone(),
    )
    .await?;
    server.create_session()?;
    let arena = server.publish(Arena::default())?;

    // Two clients join it.
    let mut clients = Vec::new();
    for name in ["alice", "bob"] {
        let client = NetStation::bind(
            any,
            NetConfig::new(ProcessType::Client, name),
            registry.clone(),
        )
        .await?;
        let (id, _) = client.join(server.local_addr()).await?;
        client
            .wait_until(Duration::from_secs(5), |st| st.contains(arena.handle()))
            .await;
        out.push(format!("{name} joined as {id}"));
        clients.push(client);
    }

    // Alice calls the RMC on the master and gets the return value and the out parameter.
    let remote = clients[0].remote_ref(&arena);
    let (hit, points) = remote.shoot(4).on_master().await?;
    out.push(format!("alice shoots: hit={hit} points={points}"));

    // Bob runs an action: on the master, then on every duplica.
    clients[1].remote_ref(&arena).cheer("alice".into()).await?;

    // The server sends the changed dataset; Bob's duplica sees it.
    server.update(arena.handle())?;
    let seen = clients[1]
        .wait_until(Duration::from_secs(5), |st| {
            st.get::<Arena>(arena.handle())
                .is_some_and(|a| a.lock().score.points == 10)
        })
        .await;
    out.push(format!("bob's duplica shows points=10: {seen}"));

    for client in clients {
        client.shutdown().await;
    }
    server.shutdown().await;
    out.push("done".into());
    Ok(out)
}

/// Runs [`play`] on a runtime of its own.
pub fn run() -> Vec<String> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    rt.block_on(play())
        .unwrap_or_else(|e| vec![format!("error: {e}")])
}

fn main() -> std::process::ExitCode {
    let lines = run();
    for line in &lines {
        println!("{line}");
    }
    if lines.last().is_some_and(|l| l == "done") {
        std::process::ExitCode::SUCCESS
    } else {
        std::process::ExitCode::FAILURE
    }
}

//! The typed async calls `#[doclass]` generates: argument and reply types.
use netz::prelude::*;
use std::time::Duration;

#[dataset]
#[derive(Default)]
pub struct Pos {
    pub x: i32,
}

#[doclass]
#[derive(Default)]
pub struct Arena {
    #[dataset]
    pub pos: Pos,
}

#[doclass]
impl Arena {
    #[rmc]
    pub fn shoot(&mut self, target: u32, #[out] distance: &mut i32) -> bool {
        *distance = target as i32;
        true
    }
    #[rmc]
    pub fn name(&self, prefix: &str, parts: &[u8], tally: &mut u64) -> String {
        *tally += parts.len() as u64;
        prefix.to_string()
    }
    #[rmc]
    pub fn ping(&self) {}
    #[action]
    pub fn reset(&mut self, to: i32) {
        self.pos.x = to;
    }
}

#[allow(dead_code)]
async fn game(station: &NetStation, h: DOHandle, other: StationId) -> Result<(), CallError> {
    let arena: ArenaRemote = station.remote::<Arena>(h);
    let (hit, distance): (bool, i32) = arena.shoot(3).on_master().await?;
    let (name, tally): (String, u64) = arena
        .name("p", &[1, 2], &7)
        .on_station(other)
        .sub_stream(1)
        .timeout(Duration::from_millis(100))
        .await?;
    let (): () = arena.ping().target_must_be_master().await?;
    let (): () = arena.shoot(1).one_way().await?;
    arena.reset(0).await?;
    arena.reset(1).on_duplicas().send()?;
    let ctx: RmcContext<(bool, i32)> = arena.shoot(2).detach()?;
    let _ = (hit, distance, name, tally, ctx, arena.handle());
    // The future of a call is Send: it can be spawned.
    let fut = station.remote::<Arena>(h).shoot(5).send();
    let _task = tokio::spawn(fut);
    Ok(())
}

fn main() {
    let mut r = Registry::new();
    r.register::<Arena>().unwrap();
}

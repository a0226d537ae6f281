//! The plugin's clock: where `now` comes from for the station.

use bevy_ecs::resource::Resource;
use netz_core::Instant;
use std::time::Duration;

/// How [`NetzClock`] moves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Source {
    /// The machine's monotonic clock, read once per frame.
    System(std::time::Instant),
    /// A fixed step per frame (tests, lock-step simulations, replays).
    Stepped(Duration),
    /// Only [`NetzClock::advance`] moves it.
    Manual,
}

/// The time the plugin hands to the station, mapped to [`netz_core::Instant`]
/// (microseconds since the clock started).
///
/// The plugin reads it once per frame, at the start of its input stage
/// ([`NetzSet::Receive`](crate::NetzSet::Receive)); every station input and
/// call of that frame carries the same `now`, which never goes backwards.
/// The default follows the machine's monotonic clock; tests and lock-step
/// games use [`NetzClock::stepped`] (a fixed step per frame) or
/// [`NetzClock::manual`], so that timeouts (heartbeats, failure detection,
/// RMC timeouts) depend on frames, not on how loaded the machine is.
#[derive(Resource, Clone, Debug)]
pub struct NetzClock {
    source: Source,
    now: Instant,
    started: bool,
}

impl Default for NetzClock {
    fn default() -> Self {
        Self::system()
    }
}

impl NetzClock {
    /// The machine's monotonic clock; zero is when the clock was made.
    pub fn system() -> Self {
        NetzClock {
            source: Source::System(std::time::Instant::now()),
            now: Instant::ZERO,
            started: false,
        }
    }

    /// A clock that moves `step` per frame (the first frame reads zero).
    pub fn stepped(step: Duration) -> Self {
        NetzClock {
            source: Source::Stepped(step),
            now: Instant::ZERO,
            started: false,
        }
    }

    /// A clock that only [`NetzClock::advance`] moves.
    pub fn manual() -> Self {
        NetzClock {
            source: Source::Manual,
            now: Instant::ZERO,
            started: false,
        }
    }

    /// The time of the current frame.
    pub fn now(&self) -> Instant {
        self.now
    }

    /// Moves the clock forward by `d` (any source).
    pub fn advance(&mut self, d: Duration) {
        self.now += d;
    }

    /// Called once per frame by the plugin.
    pub(crate) fn tick(&mut self) -> Instant {
        let first = !self.started;
        self.started = true;
        match self.source {
            Source::System(origin) => {
                let t = Instant::from_micros(
                    u64::try_from(origin.elapsed().as_micros()).unwrap_or(u64::MAX),
                );
                self.now = self.now.max(t);
            }
            Source::Stepped(step) if !first => self.now += step,
            Source::Stepped(_) | Source::Manual => {}
        }
        self.now
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stepped_moves_one_step_per_frame_after_the_first() {
        let mut c = NetzClock::stepped(Duration::from_millis(10));
        assert_eq!(c.tick(), Instant::ZERO);
        assert_eq!(c.tick(), Instant::from_millis(10));
        c.advance(Duration::from_millis(5));
        assert_eq!(c.tick(), Instant::from_millis(25));
    }

    #[test]
    fn system_never_goes_backwards() {
        let mut c = NetzClock::system();
        c.advance(Duration::from_secs(3600));
        let t = c.tick();
        assert!(t >= Instant::from_millis(3_600_000));
        assert!(c.tick() >= t);
    }
}

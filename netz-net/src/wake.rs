//! The driver's wake-up: a flag other tasks set, and the driver's waker.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::task::{Context, Poll, Waker};

/// Wakes the driver from other tasks (a call that left it work, a
/// deadline moved earlier, the stop). Polling it costs the driver an
/// atomic load while its waker stays the same: the waker is registered
/// only when it changes, and stays registered across wake-ups.
#[derive(Default)]
pub(crate) struct DriverWake {
    set: AtomicBool,
    waker: Mutex<Option<Waker>>,
}

impl DriverWake {
    /// Wakes the driver (at its next poll if it is running).
    pub(crate) fn notify(&self) {
        self.set.store(true, Ordering::SeqCst);
        let waker = self.waker.lock().unwrap_or_else(|e| e.into_inner()).clone();
        if let Some(w) = waker {
            w.wake();
        }
    }

    /// Ready once per [`DriverWake::notify`] (several before a poll count
    /// as one). `registered` is the driver's own copy of the waker it
    /// registered last.
    pub(crate) fn poll(&self, cx: &mut Context<'_>, registered: &mut Option<Waker>) -> Poll<()> {
        if self.take() {
            return Poll::Ready(());
        }
        if !registered.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
            let w = cx.waker().clone();
            *self.waker.lock().unwrap_or_else(|e| e.into_inner()) = Some(w.clone());
            *registered = Some(w);
        }
        // A notification between the first look and the registration.
        if self.take() {
            return Poll::Ready(());
        }
        Poll::Pending
    }

    fn take(&self) -> bool {
        self.set.load(Ordering::SeqCst) && self.set.swap(false, Ordering::SeqCst)
    }
}

/// The driver's timer: a tokio `Sleep` set to a time at or before the
/// station's next deadline. A deadline that moves later leaves it where
/// it is (it then fires early, and the driver finds nothing due and sets
/// it again), so that a steady stream of datagrams, each moving the
/// deadline on a little, moves no timer; and an unmoved timer is not
/// registered again at every poll, only looked at.
pub(crate) struct DriverTimer<'a> {
    sleep: std::pin::Pin<&'a mut tokio::time::Sleep>,
    /// What the timer is set to; `None` when the station has no deadline.
    armed: Option<netz_core::Instant>,
    /// The waker the timer holds since its last poll: `None` once it was
    /// moved or fired (both want a poll to register again).
    registered: Option<Waker>,
}

impl<'a> DriverTimer<'a> {
    pub(crate) fn new(sleep: std::pin::Pin<&'a mut tokio::time::Sleep>) -> Self {
        DriverTimer {
            sleep,
            armed: None,
            registered: None,
        }
    }

    /// The time the timer will be set to for the station's next
    /// `deadline`: the time it is set to when that is no later.
    pub(crate) fn next(&self, deadline: Option<netz_core::Instant>) -> Option<netz_core::Instant> {
        match (self.armed, deadline) {
            (Some(a), Some(d)) if a <= d => Some(a),
            (_, d) => d,
        }
    }

    /// Sets the timer to `at` (from [`DriverTimer::next`]); `to_tokio`
    /// maps the station's time to tokio's.
    pub(crate) fn set(
        &mut self,
        at: Option<netz_core::Instant>,
        to_tokio: impl FnOnce(netz_core::Instant) -> tokio::time::Instant,
    ) {
        if at == self.armed {
            return;
        }
        if let Some(t) = at {
            self.sleep.as_mut().reset(to_tokio(t));
            self.registered = None;
        }
        self.armed = at;
    }

    /// Whether the timer is set.
    pub(crate) fn is_armed(&self) -> bool {
        self.armed.is_some()
    }

    /// Ready once the time the timer is set to has come; it is then unset.
    pub(crate) fn poll(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        let same = self
            .registered
            .as_ref()
            .is_some_and(|w| w.will_wake(cx.waker()));
        let fired = if same {
            // Firing wakes the waker the timer holds: a look is enough.
            self.sleep.is_elapsed()
        } else if std::future::Future::poll(self.sleep.as_mut(), cx).is_ready() {
            true
        } else {
            self.registered = Some(cx.waker().clone());
            false
        };
        if !fired {
            return Poll::Pending;
        }
        self.registered = None;
        self.armed = None;
        Poll::Ready(())
    }
}

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

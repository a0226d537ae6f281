//! [`NetStation`]: a station on a socket, driven by a tokio task.

use crate::config::NetConfig;
use crate::error::NetError;
use crate::socket::DatagramSocket;
use crate::wake::{DriverTimer, DriverWake};
use netz_core::rmc::RmcContext;
use netz_core::{
    DOHandle, DoClass, Event, Instant, JoinError, Outcome, Ref, Registry, RoomInfo, Station,
    StationId, StationStats,
};
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};
use std::time::Duration;
use tokio::sync::{broadcast, watch};
use tokio::task::JoinHandle;
use tracing::{debug, info_span, warn, Instrument, Span};

/// Where a station stands, as seen by the driver.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum SessionState {
    /// Bound, in no session yet.
    Idle,
    /// A join is under way.
    Joining,
    /// In a session.
    InSession {
        /// Our id.
        id: StationId,
        /// The session master.
        session_master: StationId,
    },
    /// The last join failed; the station is idle again.
    JoinFailed(JoinError),
    /// The station left the session or was dropped by it.
    Closed {
        /// Why.
        reason: String,
    },
}

/// Maps the monotonic clock to the core's virtual time: microseconds since
/// the driver started. Never goes backwards.
#[derive(Debug)]
struct Clock {
    start: tokio::time::Instant,
    last: AtomicU64,
}

impl Clock {
    fn new() -> Self {
        Clock {
            start: tokio::time::Instant::now(),
            last: AtomicU64::new(0),
        }
    }

    fn now(&self) -> Instant {
        // Seconds and microseconds apart: no 128-bit division.
        let d = self.start.elapsed();
        let elapsed = d
            .as_secs()
            .saturating_mul(1_000_000)
            .saturating_add(u64::from(d.subsec_micros()));
        let prev = self.last.fetch_max(elapsed, Ordering::AcqRel);
        Instant::from_micros(prev.max(elapsed))
    }

    fn to_tokio(&self, t: Instant) -> tokio::time::Instant {
        self.start + Duration::from_micros(t.as_micros().min(u64::MAX / 4))
    }
}

struct Shared {
    station: Mutex<Station>,
    clock: Clock,
    wake: DriverWake,
    socket: Arc<dyn DatagramSocket>,
    /// Set (under the station's lock) while the driver holds datagrams it
    /// took from the station and has not sent yet: a caller then leaves its
    /// own datagrams to the driver, so that none overtakes another.
    sending: AtomicBool,
    /// Set by [`NetStation::shutdown`]: the driver stops at its next turn
    /// (it is woken through `wake`, so that it waits on one thing less).
    stop: AtomicBool,
    /// Whether `handed` holds datagrams (read without its lock).
    has_handed: AtomicBool,
    /// The session master last seen by `publish` (its id), so that an
    /// unchanged one costs no write lock on the session state.
    master_seen: AtomicU64,
    /// The deadline the driver sleeps until, µs of the station's clock
    /// (`u64::MAX` for none); a caller whose call moved the station's next
    /// deadline earlier wakes the driver.
    sleeping_until: AtomicU64,
    /// Datagrams a caller could not send at once, for the driver to send
    /// first.
    handed: Mutex<Vec<netz_core::Transmit>>,
    /// Set when the driver has ended (however it ended): the tasks
    /// awaiting calls are woken then and fail with `Stopped`.
    ended: AtomicBool,
    events: broadcast::Sender<Event>,
    state: watch::Sender<SessionState>,
    tick: watch::Sender<u64>,
    local_addr: SocketAddr,
    span: Span,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Station> {
        self.station.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Drains the station's outputs and returns its next deadline; called
    /// with the lock held so that state changes are published in the order
    /// the station made them. A deadline that is already due is handled
    /// at once, once a turn (the driver's timer takes one that stays due).
    fn drain(
        &self,
        st: &mut Station,
        now: Instant,
        out: &mut Vec<netz_core::Transmit>,
    ) -> Option<Instant> {
        while let Some(t) = st.poll_transmit(now) {
            out.push(t);
        }
        let mut deadline = st.poll_timeout();
        if deadline.is_some_and(|t| t <= now) {
            st.handle_timeout(now);
            while let Some(t) = st.poll_transmit(now) {
                out.push(t);
            }
            deadline = st.poll_timeout();
        }
        self.publish(st);
        deadline
    }

    /// After a user's call on the station (lock held): sends what the call
    /// caused from the calling task if the driver is idle and the socket
    /// can send at once, and publishes the events. Returns whether the
    /// driver must still be woken (datagrams left for it, or a deadline
    /// earlier than the one it sleeps until).
    fn flush_from_caller(&self, st: &mut Station, now: Instant) -> bool {
        if self.sending.load(Ordering::Acquire) || self.has_handed.load(Ordering::Acquire) {
            return true;
        }
        // A deadline that came due is left to the driver, whose timer takes
        // it: the driver wakes at the deadline it sleeps until.
        while let Some(t) = st.poll_transmit(now) {
            match self.socket.try_send_to(&t.contents, t.destination) {
                Ok(_) => st.recycle(t.contents),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    // The socket is full or cannot send without waiting:
                    // the driver sends this one and the rest, in order.
                    let mut rest = vec![t];
                    while let Some(t) = st.poll_transmit(now) {
                        rest.push(t);
                    }
                    self.handoff(rest);
                    self.publish(st);
                    return true;
                }
                Err(e) => {
                    debug!(to = %t.destination, "send failed: {e}");
                    st.recycle(t.contents);
                }
            }
        }
        self.publish(st);
        st.poll_timeout()
            .is_some_and(|t| t.as_micros() < self.sleeping_until.load(Ordering::Acquire))
    }

    /// Leaves `datagrams` to the driver (lock held): it sends them before
    /// anything it drains itself.
    fn handoff(&self, datagrams: Vec<netz_core::Transmit>) {
        self.handed
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .extend(datagrams);
        self.has_handed.store(true, Ordering::Release);
    }

    /// Publishes the station's events and session state (lock held).
    fn publish(&self, st: &mut Station) {
        let mut moved = false;
        while let Some(e) = st.poll_event() {
            moved |= self.on_event(st, &e);
            let _ = self.events.send(e);
        }
        // A session master chosen without an event still shows in the state
        // (looked at when the master or the state moved: most events, such
        // as a completed call, move neither).
        let master = st.session_master();
        let seen = self.master_seen.swap(u64::from(master.0), Ordering::AcqRel);
        if !moved && seen == u64::from(master.0) {
            return;
        }
        self.state.send_if_modified(|s| match s {
            SessionState::InSession { session_master, .. } if *session_master != master => {
                *session_master = master;
                true
            }
            _ => false,
        });
    }

    /// Moves the session state on `e`; returns whether it did.
    fn on_event(&self, st: &Station, e: &Event) -> bool {
        let next = match e {
            Event::SessionCreated { id } => {
                self.span.record("id", id.0);
                Some(SessionState::InSession {
                    id: *id,
                    session_master: *id,
                })
            }
            Event::Joined { id, session_master } => {
                self.span.record("id", id.0);
                Some(SessionState::InSession {
                    id: *id,
                    session_master: *session_master,
                })
            }
            Event::JoinFailed(err) => Some(SessionState::JoinFailed(err.clone())),
            Event::SessionMasterChanged { new_master } => Some(SessionState::InSession {
                id: st.id(),
                session_master: *new_master,
            }),
            Event::Disconnected { reason } => Some(SessionState::Closed {
                reason: reason.clone(),
            }),
            _ => None,
        };
        let moved = next.is_some();
        if let Some(s) = next {
            self.state.send_replace(s);
        }
        moved
    }
}

/// Wakes every [`CallWait`] when the driver ends, however it ends
/// (stopped, aborted, or panicking). The core completes every call (with
/// `TimedOut` at the latest) as long as the driver runs; when it stops,
/// the tasks awaiting calls are woken and find [`Shared::ended`] set, so
/// that no call needs a timer of its own.
struct StopGuard(Arc<Shared>);

impl Drop for StopGuard {
    fn drop(&mut self) {
        // Set before the wake-ups: a call polled after its wake-up sees it
        // (and one polled before registered its waker in the call, which
        // the station wakes).
        self.0.ended.store(true, Ordering::SeqCst);
        self.0.lock().wake_waiting_calls();
    }
}

/// Awaits an RMC's outcome on a station: the core's outcome, or
/// [`NetError::Stopped`] once the station's driver has stopped.
pub(crate) struct CallWait {
    completion: netz_core::rmc::Completion,
    shared: Arc<Shared>,
}

impl Future for CallWait {
    type Output = Result<Outcome, NetError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = &mut *self;
        // The completion registers the waker, which the core wakes when the
        // call ends and the driver's end wakes through the station.
        if let Poll::Ready(outcome) = Pin::new(&mut this.completion).poll(cx) {
            return Poll::Ready(Ok(outcome));
        }
        if this.shared.ended.load(Ordering::SeqCst) {
            return Poll::Ready(Err(NetError::Stopped));
        }
        Poll::Pending
    }
}

/// Stops the driver when the last handle goes.
struct Owner {
    task: Mutex<Option<JoinHandle<()>>>,
    callbacks: Mutex<Vec<JoinHandle<()>>>,
}

impl Drop for Owner {
    fn drop(&mut self) {
        if let Some(t) = self.task.lock().unwrap_or_else(|e| e.into_inner()).take() {
            t.abort();
        }
        for t in self
            .callbacks
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .drain(..)
        {
            t.abort();
        }
    }
}

/// A netz station on a datagram socket.
///
/// A tokio task owns the socket and the timers: it feeds every datagram and
/// every expired deadline to the core's [`Station`], sends what the station
/// wants sent and publishes its events. The station itself makes every
/// protocol decision.
///
/// Handles are cheap to clone; the driver stops when the last one is
/// dropped (abruptly, as a crash would: call [`NetStation::shutdown`] to
/// leave the session first).
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), netz_net::NetError> {
/// use netz_core::{ProcessType, Registry};
/// use netz_net::{NetConfig, NetStation};
/// use std::sync::Arc;
///
/// let registry = Arc::new(Registry::new());
/// let server = NetStation::bind(
///     "127.0.0.1:0".parse().unwrap(),
///     NetConfig::new(ProcessType::Server, "server"),
///     registry.clone(),
/// )
/// .await?;
/// server.create_session()?;
/// let client = NetStation::bind(
///     "127.0.0.1:0".parse().unwrap(),
///     NetConfig::new(ProcessType::Client, "alice"),
///     registry,
/// )
/// .await?;
/// let (id, master) = client.join(server.local_addr()).await?;
/// assert_eq!(master, server.id());
/// # let _ = id;
/// client.shutdown().await;
/// server.shutdown().await;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct NetStation {
    shared: Arc<Shared>,
    owner: Arc<Owner>,
}

impl std::fmt::Debug for NetStation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NetStation")
            .field("local_addr", &self.shared.local_addr)
            .field("state", &*self.shared.state.borrow())
            .finish()
    }
}

impl NetStation {
    /// Binds a UDP socket on `addr` (port 0 picks a free port) and starts
    /// the driver. Fails with [`NetError::AddrInUse`] or
    /// [`NetError::AddrNotAvailable`] when the address cannot be had.
    pub async fn bind(
        addr: SocketAddr,
        config: NetConfig,
        registry: Arc<Registry>,
    ) -> Result<NetStation, NetError> {
        let socket = tokio::net::UdpSocket::bind(addr)
            .await
            .map_err(|e| NetError::from_bind(addr, e))?;
        Self::with_socket(socket, config, registry)
    }

    /// Starts the driver on a socket of your own (for instance an in-memory
    /// [`crate::simnet::SimSocket`]). Must be called inside a tokio runtime.
    pub fn with_socket(
        socket: impl DatagramSocket,
        config: NetConfig,
        registry: Arc<Registry>,
    ) -> Result<NetStation, NetError> {
        let local_addr = socket.local_addr()?;
        let capacity = config.event_capacity.max(16);
        let station = Station::new(config.into_station_config(local_addr)?, registry);
        let span = info_span!("station", addr = %local_addr, id = tracing::field::Empty);
        let (events, _) = broadcast::channel(capacity);
        let socket: Arc<dyn DatagramSocket> = Arc::new(socket);
        let shared = Arc::new(Shared {
            station: Mutex::new(station),
            clock: Clock::new(),
            wake: DriverWake::default(),
            socket: socket.clone(),
            sending: AtomicBool::new(false),
            stop: AtomicBool::new(false),
            has_handed: AtomicBool::new(false),
            master_seen: AtomicU64::new(u64::MAX),
            sleeping_until: AtomicU64::new(0),
            handed: Mutex::new(Vec::new()),
            ended: AtomicBool::new(false),
            events,
            state: watch::Sender::new(SessionState::Idle),
            tick: watch::Sender::new(0),
            local_addr,
            span: span.clone(),
        });
        let task = tokio::spawn(drive(shared.clone(), socket).instrument(span));
        Ok(NetStation {
            shared,
            owner: Arc::new(Owner {
                task: Mutex::new(Some(task)),
                callbacks: Mutex::new(Vec::new()),
            }),
        })
    }

    /// Whether [`NetStation::shutdown`] stopped the driver.
    pub(crate) fn is_stopped(&self) -> bool {
        self.shared.stop.load(Ordering::Acquire)
    }

    /// The address the socket is bound to.
    pub fn local_addr(&self) -> SocketAddr {
        self.shared.local_addr
    }

    /// Our station id (`StationId::NONE` before joining).
    pub fn id(&self) -> StationId {
        self.read(|s| s.id())
    }

    /// The session master's id.
    pub fn session_master(&self) -> StationId {
        self.read(|s| s.session_master())
    }

    /// The station's counters (datagrams received, dropped from unknown senders...).
    pub fn stats(&self) -> StationStats {
        self.read(|s| s.stats().clone())
    }

    /// Where the station stands.
    pub fn state(&self) -> SessionState {
        self.shared.state.borrow().clone()
    }

    /// Subscribes to the station's events from now on.
    pub fn events(&self) -> Events {
        Events {
            rx: self.shared.events.subscribe(),
            missed: 0,
        }
    }

    /// Runs `f` on the station with the current time, then wakes the driver
    /// so that whatever `f` caused is sent at once. Never hold on to the
    /// station beyond `f`; do not block in it.
    ///
    /// What `f` caused is sent from the calling task when the driver is
    /// idle and the socket can send at once (a tokio `UdpSocket` can); the
    /// driver is only woken when it has to send or its next deadline moved
    /// earlier.
    pub fn with<R>(&self, f: impl FnOnce(&mut Station, Instant) -> R) -> R {
        let _span = self.shared.span.enter();
        let (r, wake) = {
            let mut st = self.shared.lock();
            let now = self.shared.clock.now();
            let r = f(&mut st, now);
            (r, self.shared.flush_from_caller(&mut st, now))
        };
        if wake {
            self.shared.wake.notify();
        }
        r
    }

    /// Reads the station.
    pub fn read<R>(&self, f: impl FnOnce(&Station) -> R) -> R {
        f(&self.shared.lock())
    }

    /// Creates a session on this station, which becomes its session master.
    pub fn create_session(&self) -> Result<StationId, NetError> {
        let local = self.shared.local_addr;
        self.with(|st, now| {
            st.create_session(now, local)?;
            self.shared.state.send_replace(SessionState::InSession {
                id: st.id(),
                session_master: st.id(),
            });
            Ok(st.id())
        })
    }

    /// Joins the session of the station at `contact`, with the token and
    /// process type of the configuration. Resolves with our id and the
    /// session master's once joined; fails with [`NetError::Join`] when the
    /// session refuses the join or nobody answers within the join timeout.
    ///
    /// Cancellation-safe: dropping the future does not stop the join, whose
    /// outcome then shows in [`NetStation::state`] and the events.
    pub async fn join(&self, contact: SocketAddr) -> Result<(StationId, StationId), NetError> {
        let local = self.shared.local_addr;
        check_contact(local, contact)?;
        let mut rx = self.shared.state.subscribe();
        let timeout = self.with(|st, now| {
            st.join(now, local, contact)?;
            self.shared.state.send_replace(SessionState::Joining);
            Ok::<_, NetError>(st.config().join_timeout)
        })?;
        let waited = tokio::time::timeout(
            timeout + Duration::from_secs(2),
            rx.wait_for(|s| !matches!(s, SessionState::Joining)),
        )
        .await;
        let state = match waited {
            Err(_) => return Err(NetError::TimedOut("join")),
            Ok(Err(_)) => return Err(NetError::Stopped),
            Ok(Ok(s)) => s.clone(),
        };
        match state {
            SessionState::InSession { id, session_master } => Ok((id, session_master)),
            SessionState::JoinFailed(e) => Err(NetError::Join(e)),
            _ => Err(NetError::NotInSession),
        }
    }

    /// Leaves the session gracefully: our masters go to the session's fault
    /// recovery, and the future resolves once the station has closed (or
    /// after the failure timeout and a margin). A station that left cannot
    /// join again: bind a new one.
    ///
    /// Cancellation-safe: dropping the future does not stop the leave.
    pub async fn leave(&self) -> Result<(), NetError> {
        let mut rx = self.shared.state.subscribe();
        let timeout = self.with(|st, now| {
            st.leave(now).map_err(|_| NetError::NotInSession)?;
            Ok::<_, NetError>(st.config().failure_timeout)
        })?;
        let waited = tokio::time::timeout(
            timeout + Duration::from_secs(2),
            rx.wait_for(|s| matches!(s, SessionState::Closed { .. })),
        )
        .await;
        match waited {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(_)) => Err(NetError::Stopped),
            Err(_) => Err(NetError::TimedOut("leave")),
        }
    }

    /// Leaves the session if in one, then stops the driver and closes the
    /// socket. Other handles see [`NetError::Stopped`] afterwards.
    pub async fn shutdown(self) {
        if matches!(self.state(), SessionState::InSession { .. }) {
            if let Err(e) = self.leave().await {
                debug!(parent: &self.shared.span, "leave on shutdown: {e}");
            }
        }
        self.shared.stop.store(true, Ordering::Release);
        self.shared.wake.notify();
        let task = self
            .owner
            .task
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        if let Some(task) = task {
            let abort = task.abort_handle();
            if tokio::time::timeout(Duration::from_secs(2), task)
                .await
                .is_err()
            {
                abort.abort();
            }
        }
    }

    /// Publishes `object` as a master on this station.
    pub fn publish<T: DoClass>(&self, object: T) -> Result<Ref<T>, NetError> {
        Ok(self.with(|st, now| st.publish(now, object))?)
    }

    /// Sends the changed datasets of master `handle`; returns whether anything changed.
    pub fn update(&self, handle: DOHandle) -> Result<bool, NetError> {
        Ok(self.with(|st, now| st.update(now, handle))?)
    }

    /// Sends the changed datasets of every master; returns how many were sent.
    pub fn update_all(&self) -> usize {
        self.with(|st, now| st.update_all(now))
    }

    /// Sends an RMC through `send` (which calls a stub with `ctx`, such as
    /// `st.object::<T>(h).call_name(&ctx, ..)`) and waits for its outcome
    /// (the core times the call out after the RMC timeout, with
    /// `Outcome::TimedOut`); the result is then in `ctx.result()`. Fails
    /// with [`NetError::NotSent`] when `send` returns false, and with
    /// [`NetError::Stopped`] when the driver stops first. Sets no timer of
    /// its own. Cancellation-safe: dropping the future leaves the call
    /// running.
    ///
    /// The typed calls `#[doclass]` generates do the same in one line and
    /// deliver the reply: `station.remote::<T>(h).name(args).await` (see
    /// [`crate::call`]).
    ///
    /// ```no_run
    /// # async fn f(station: &netz_net::NetStation, h: netz_core::DOHandle) {
    /// use netz_core::rmc::RmcContext;
    /// use netz_core::{MethodId, Outcome};
    /// # struct Score;
    /// # impl netz_core::DoClass for Score {
    /// #     const CLASS_NAME: &'static str = "Score";
    /// #     type Proxy<'a> = netz_core::ObjectProxy<'a, Self>;
    /// #     fn new_duplica() -> Self { Score }
    /// # }
    /// let ctx: RmcContext<i64> = RmcContext::on_master();
    /// let outcome = station
    ///     .call(&ctx, |st| st.object::<Score>(h).call(&ctx, MethodId(0), &(5i64,)))
    ///     .await;
    /// if let Ok(Outcome::Success) = outcome {
    ///     println!("returned {:?}", ctx.result());
    /// }
    /// # }
    /// ```
    pub async fn call<R>(
        &self,
        ctx: &RmcContext<R>,
        send: impl FnOnce(&mut Station) -> bool,
    ) -> Result<Outcome, NetError> {
        if !self.with(|st, _| send(st)) {
            return Err(NetError::NotSent);
        }
        self.wait_call(ctx).await
    }

    /// Awaits the outcome of `ctx`'s call: the core's, which comes at the
    /// latest after the RMC timeout, or [`NetError::Stopped`] once the
    /// driver has stopped. Sets no timer.
    pub(crate) fn wait_call<R>(&self, ctx: &RmcContext<R>) -> CallWait {
        CallWait {
            completion: ctx.completion(),
            shared: self.shared.clone(),
        }
    }

    /// Waits until `cond` holds on the station (checked after every step of
    /// the driver) or `timeout` passes; returns whether it held.
    pub async fn wait_until(
        &self,
        timeout: Duration,
        mut cond: impl FnMut(&Station) -> bool,
    ) -> bool {
        let mut rx = self.shared.tick.subscribe();
        let fut = async {
            loop {
                if self.read(&mut cond) {
                    return true;
                }
                if rx.changed().await.is_err() {
                    return self.read(&mut cond);
                }
            }
        };
        tokio::time::timeout(timeout, fut).await.unwrap_or(false)
    }

    /// Scales this server in (MIG-1): it tells its clients
    /// ([`Callbacks::on_offline`]), hands its objects to the other servers,
    /// takes no new clients or rooms, and leaves the session once its
    /// clients and rooms have moved or `drain` is over (clients still there
    /// are then disconnected with a reason). Wait for
    /// [`SessionState::Closed`] (or [`NetStation::wait_closed`]) before
    /// exiting the process.
    pub fn scale_in(&self, drain: Duration) -> Result<(), NetError> {
        Ok(self.with(|st, now| st.scale_in(now, drain))?)
    }

    /// [`NetStation::scale_in`] with the configuration's drain timeout.
    pub fn scale_in_default(&self) -> Result<(), NetError> {
        let drain = self.read(|st| st.config().drain_timeout);
        self.scale_in(drain)
    }

    /// Waits until the station closed (left or was dropped by the session),
    /// at most `timeout`; returns why, or `None` on timeout.
    pub async fn wait_closed(&self, timeout: Duration) -> Option<String> {
        let mut rx = self.shared.state.subscribe();
        let waited = tokio::time::timeout(
            timeout,
            rx.wait_for(|s| matches!(s, SessionState::Closed { .. })),
        )
        .await;
        match waited {
            Ok(Ok(s)) => match &*s {
                SessionState::Closed { reason } => Some(reason.clone()),
                _ => None,
            },
            _ => None,
        }
    }

    /// Moves this client to another server of the cluster (Diarkis
    /// `SendMigrate`, MIG-2): the driver disconnects and reconnects at once
    /// ([`Callbacks::on_disconnect`] with `is_reconnect = true`, then
    /// [`Callbacks::on_connect`] with `reconnect = true`); the station id,
    /// objects and duplicas stay; reliable messages sent meanwhile are
    /// delivered after the reconnect, exactly once and in order.
    pub fn send_migrate(&self) -> Result<(), NetError> {
        Ok(self.with(|st, now| st.send_migrate(now))?)
    }

    /// The server this client is attached to.
    pub fn relay(&self) -> Option<StationId> {
        self.read(|st| st.relay())
    }

    /// Asks this client's server (or this server) to host a new room owned
    /// by this station; the answer is an [`Event::RoomResult`] with the
    /// returned request id.
    pub fn create_room(&self, properties: Vec<(String, String)>) -> Result<u64, NetError> {
        Ok(self.with(|st, now| st.create_room(now, properties))?)
    }

    /// Joins a room (answered by [`Event::RoomResult`]).
    pub fn join_room(&self, room: DOHandle) -> Result<u64, NetError> {
        Ok(self.with(|st, now| st.join_room(now, room))?)
    }

    /// Sets a property of a room (answered by [`Event::RoomResult`]).
    pub fn set_room_property(
        &self,
        room: DOHandle,
        key: impl Into<String>,
        value: impl Into<String>,
    ) -> Result<u64, NetError> {
        let (key, value) = (key.into(), value.into());
        Ok(self.with(|st, now| st.set_room_property(now, room, key, value))?)
    }

    /// Moves a room to another server (Diarkis `SendMigrateRoom`, MIG-3).
    /// Only the room's owner may; anyone else gets
    /// [`netz_core::StationError::NotRoomOwner`]. Members see
    /// [`Callbacks::on_room_migrate_start`], then
    /// [`Callbacks::on_room_migrate_complete`] with the room's new id.
    pub fn send_migrate_room(&self, room: DOHandle) -> Result<u64, NetError> {
        Ok(self.with(|st, now| st.send_migrate_room(now, room))?)
    }

    /// Every room of the session.
    pub fn rooms(&self) -> Vec<RoomInfo> {
        self.read(|st| st.rooms())
    }

    /// Runs `callbacks` on this station's connection events, in order, on a
    /// task of their own (so they may call [`NetStation::send_migrate`] and
    /// friends). Install them before creating or joining the session to see
    /// the first [`Callbacks::on_connect`]. The task ends with the station.
    pub fn set_callbacks(&self, callbacks: impl Callbacks) {
        let mut events = self.events();
        let shared = Arc::downgrade(&self.shared);
        let owner = Arc::downgrade(&self.owner);
        let mut cb = callbacks;
        let task = tokio::spawn(async move {
            while let Some(e) = events.recv().await {
                let (Some(shared), Some(owner)) = (shared.upgrade(), owner.upgrade()) else {
                    return;
                };
                let station = NetStation { shared, owner };
                dispatch(&mut cb, &station, &e);
            }
        });
        self.owner
            .callbacks
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(task);
    }

    /// Waits for the first event matching `pick` (from now on) or until `timeout`.
    pub async fn wait_event<T>(
        &self,
        timeout: Duration,
        pick: impl FnMut(&Event) -> Option<T>,
    ) -> Option<T> {
        self.events().wait_for(timeout, pick).await
    }
}

/// What [`Callbacks::on_room_migrate_complete`] reports (Diarkis
/// `DiarkisRoomMigrateCompleteEventArgs`).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct RoomMigrateComplete {
    /// The room's object (the same before and after the move).
    pub room: DOHandle,
    /// Whether the room moved.
    pub success: bool,
    /// The room's id from now on (its old id when it failed).
    pub room_id: String,
    /// 0, or a [`netz_core::RoomError`] code.
    pub error_code: u16,
    /// What happened, for people.
    pub message: String,
}

/// The connection callbacks of the Diarkis client runtime, driven by a
/// [`NetStation`] (see [`NetStation::set_callbacks`]). Every method has an
/// empty default; override what you need.
///
/// A migration (MIG-1..3) reads: `on_offline` (the server scales in; call
/// [`NetStation::send_migrate`] when it suits you), `on_disconnect(true)`,
/// `on_connect(true)`. A real loss of the connection reads
/// `on_disconnect(false)` only: that is where the application's normal
/// disconnect path belongs.
#[allow(unused_variables)]
pub trait Callbacks: Send + 'static {
    /// Connected: after creating or joining the session (`reconnect =
    /// false`), or to the new server of a migration (`reconnect = true`).
    fn on_connect(&mut self, station: &NetStation, reconnect: bool) {}
    /// Disconnected: for good (`is_reconnect = false`), or from the old
    /// server of a migration (`is_reconnect = true`, the runtime reconnects
    /// by itself: do not run the normal disconnect path).
    fn on_disconnect(&mut self, station: &NetStation, is_reconnect: bool) {}
    /// This client's server scales in: migrate soon.
    fn on_offline(&mut self, station: &NetStation) {}
    /// A migration could not be done; the client stays where it is.
    fn on_migrate_failed(&mut self, station: &NetStation, reason: &str) {}
    /// A room this station is a member of starts moving.
    fn on_room_migrate_start(&mut self, station: &NetStation, room: DOHandle) {}
    /// A room migration ended.
    fn on_room_migrate_complete(&mut self, station: &NetStation, event: &RoomMigrateComplete) {}
}

fn dispatch(cb: &mut impl Callbacks, station: &NetStation, e: &Event) {
    match e {
        Event::SessionCreated { .. } | Event::Joined { .. } => cb.on_connect(station, false),
        Event::Reconnected { .. } => cb.on_connect(station, true),
        Event::MigrateDisconnected { .. } => cb.on_disconnect(station, true),
        Event::Disconnected { .. } => cb.on_disconnect(station, false),
        Event::Offline { ours: true, .. } => cb.on_offline(station),
        Event::MigrateFailed { reason } => cb.on_migrate_failed(station, reason),
        Event::RoomMigrateStart { room } => cb.on_room_migrate_start(station, *room),
        Event::RoomMigrateComplete {
            room,
            success,
            room_id,
            error_code,
            message,
        } => cb.on_room_migrate_complete(
            station,
            &RoomMigrateComplete {
                room: *room,
                success: *success,
                room_id: room_id.clone(),
                error_code: *error_code,
                message: message.clone(),
            },
        ),
        _ => {}
    }
}

/// Waits for an RMC to complete, at most `timeout`; returns its outcome, or
/// [`Outcome::Unknown`] if it is still running. The call itself times out
/// after the configuration's RMC timeout (`Outcome::TimedOut`).
/// Cancellation-safe.
pub async fn wait_rmc<R>(ctx: &RmcContext<R>, timeout: Duration) -> Outcome {
    tokio::time::timeout(timeout, ctx.completion())
        .await
        .unwrap_or(Outcome::Unknown)
}

fn check_contact(local: SocketAddr, contact: SocketAddr) -> Result<(), NetError> {
    let bad = |why| Err(NetError::InvalidAddress { addr: contact, why });
    if contact.port() == 0 {
        return bad("port 0 cannot be contacted");
    }
    if contact.ip().is_unspecified() {
        return bad("the unspecified address cannot be contacted");
    }
    if contact.ip().is_multicast() {
        return bad("a multicast address cannot be a contact");
    }
    if contact == local {
        return bad("a station cannot join through itself");
    }
    let dual_stack = local.is_ipv6() && local.ip().is_unspecified();
    if local.is_ipv4() != contact.is_ipv4() && !dual_stack {
        return bad(if local.is_ipv4() {
            "an IPv6 contact cannot be reached from an IPv4 socket"
        } else {
            "an IPv4 contact cannot be reached from an IPv6 socket"
        });
    }
    Ok(())
}

/// The events of a station (see [`NetStation::events`]).
#[derive(Debug)]
pub struct Events {
    rx: broadcast::Receiver<Event>,
    missed: u64,
}

impl Events {
    /// The next event; `None` once the station is gone. Cancellation-safe.
    pub async fn recv(&mut self) -> Option<Event> {
        loop {
            match self.rx.recv().await {
                Ok(e) => return Some(e),
                Err(broadcast::error::RecvError::Lagged(n)) => self.missed += n,
                Err(broadcast::error::RecvError::Closed) => return None,
            }
        }
    }

    /// The next event if one is waiting.
    pub fn try_recv(&mut self) -> Option<Event> {
        loop {
            match self.rx.try_recv() {
                Ok(e) => return Some(e),
                Err(broadcast::error::TryRecvError::Lagged(n)) => self.missed += n,
                Err(_) => return None,
            }
        }
    }

    /// Waits for the first event matching `pick`, at most `timeout`.
    pub async fn wait_for<T>(
        &mut self,
        timeout: Duration,
        mut pick: impl FnMut(&Event) -> Option<T>,
    ) -> Option<T> {
        let fut = async {
            while let Some(e) = self.recv().await {
                if let Some(t) = pick(&e) {
                    return Some(t);
                }
            }
            None
        };
        tokio::time::timeout(timeout, fut).await.ok().flatten()
    }

    /// How many events this receiver missed because it fell behind.
    pub fn missed(&self) -> u64 {
        self.missed
    }
}

/// What [`DatagramSocket::recv_from`] returns.
type RecvFuture<'a> = Pin<Box<dyn Future<Output = io::Result<(usize, SocketAddr)>> + Send + 'a>>;

/// The driver's wait for a datagram: a poll of the socket, or its boxed
/// `recv_from` for a socket that cannot be polled.
enum Recv<'a> {
    Poll(&'a dyn DatagramSocket, &'a mut [u8]),
    Boxed(RecvFuture<'a>),
}

impl<'a> Recv<'a> {
    fn new(socket: &'a dyn DatagramSocket, buf: &'a mut [u8], polling: bool) -> Self {
        if polling {
            Recv::Poll(socket, buf)
        } else {
            Recv::Boxed(socket.recv_from(buf))
        }
    }
}

impl Future for Recv<'_> {
    type Output = io::Result<(usize, SocketAddr)>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match &mut *self {
            Recv::Poll(socket, buf) => socket.poll_recv_from(cx, buf),
            Recv::Boxed(f) => f.as_mut().poll(cx),
        }
    }
}

/// At most this many datagrams already waiting are taken after one the
/// driver awaited, before it looks at its timers and wake-ups again.
const BURST: usize = 64;

/// The driver: owns the socket, sleeps until the station's next deadline,
/// and feeds it every datagram, deadline and user call.
async fn drive(shared: Arc<Shared>, socket: Arc<dyn DatagramSocket>) {
    let _stopped = StopGuard(shared.clone());
    let mut buf = vec![0u8; 65_536];
    let mut out = Vec::new();
    let mut sent: Vec<Vec<u8>> = Vec::new();
    let mut errors = 0u32;
    // Whether the socket can be polled for datagrams (found out at the
    // first poll).
    let mut polling = true;
    // The wake-up, the deadline and the stop stay armed across turns of
    // the loop: re-creating them every turn costs a timer registration
    // and a waiter list update per datagram.
    let mut registered: Option<Waker> = None;
    let sleep = tokio::time::sleep_until(tokio::time::Instant::now());
    tokio::pin!(sleep);
    let mut timer = DriverTimer::new(sleep);
    // The time the last datagram was handled at, for the turn that follows
    // at once (one clock reading fewer per datagram).
    let mut carried: Option<Instant> = None;
    loop {
        let wake_at = {
            let mut st = shared.lock();
            let now = carried.take().unwrap_or_else(|| shared.clock.now());
            // The buffers of what the last turn sent go back to the station.
            for b in sent.drain(..) {
                st.recycle(b);
            }
            if shared.has_handed.load(Ordering::Acquire)
                && shared.has_handed.swap(false, Ordering::AcqRel)
            {
                out.append(&mut shared.handed.lock().unwrap_or_else(|e| e.into_inner()));
            }
            let deadline = shared.drain(&mut st, now, &mut out);
            if !out.is_empty() {
                shared.sending.store(true, Ordering::Release);
            }
            let wake_at = timer.next(deadline);
            shared.sleeping_until.store(
                wake_at.map_or(u64::MAX, |d| d.as_micros()),
                Ordering::Release,
            );
            wake_at
        };
        for t in out.drain(..) {
            let result = match socket.try_send_to(&t.contents, t.destination) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    socket.send_to(&t.contents, t.destination).await
                }
                r => r,
            };
            if let Err(e) = result {
                debug!(to = %t.destination, "send failed: {e}");
            }
            sent.push(t.contents);
        }
        shared.sending.store(false, Ordering::Release);
        if shared.tick.receiver_count() > 0 {
            shared.tick.send_modify(|n| *n = n.wrapping_add(1));
        }
        timer.set(wake_at, |t| shared.clock.to_tokio(t));
        tokio::select! {
            biased;
            () = std::future::poll_fn(|cx| shared.wake.poll(cx, &mut registered)) => {
                if shared.stop.load(Ordering::Acquire) {
                    break;
                }
            }
            () = std::future::poll_fn(|cx| timer.poll(cx)), if timer.is_armed() => {
                // Set again by the next turn (the station's deadline moves
                // on once handled; a timer that fired early finds nothing
                // due).
                let mut st = shared.lock();
                let now = shared.clock.now();
                st.handle_timeout(now);
            }
            r = Recv::new(&*socket, &mut buf, polling) => match r {
                Err(e) if polling && e.kind() == io::ErrorKind::Unsupported => polling = false,
                Ok((n, from)) => {
                    errors = 0;
                    {
                        let mut st = shared.lock();
                        let now = shared.clock.now();
                        st.handle_datagram(now, from, &buf[..n]);
                        carried = Some(now);
                    }
                    // Take what else is already waiting, without another
                    // turn of the select.
                    for _ in 0..BURST {
                        let Ok((n, from)) = socket.try_recv_from(&mut buf) else {
                            break;
                        };
                        let mut st = shared.lock();
                        let now = shared.clock.now();
                        st.handle_datagram(now, from, &buf[..n]);
                        carried = Some(now);
                    }
                }
                Err(e) if is_transient(&e) => {}
                Err(e) => {
                    errors = errors.saturating_add(1);
                    if errors == 1 {
                        warn!("receive failed: {e}");
                    }
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            },
        }
    }
    debug!("driver stopped");
}

/// Errors a UDP socket reports for an ICMP message about an earlier send.
fn is_transient(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::Interrupted
            | io::ErrorKind::WouldBlock
    )
}

//! The station resource, the socket, and the systems that feed and drain
//! the station around `Update`.

use crate::calls::PendingCalls;
use crate::clock::NetzClock;
use crate::messages::*;
use crate::objects::{NetzClasses, NetzEntities, NetzObject, Role};
use bevy_ecs::message::MessageWriter;
use bevy_ecs::resource::Resource;
use bevy_ecs::system::{Commands, Query, Res, ResMut, SystemParam};
use netz_core::{
    DOHandle, Event, OperationKind, Registry, Station, StationConfig, StationId, StationInfo,
};
use std::collections::HashSet;
use std::io::ErrorKind;
use std::net::{SocketAddr, UdpSocket};
use std::sync::{Arc, Mutex};

/// The largest datagram the plugin receives.
const MAX_DATAGRAM: usize = 64 * 1024;
/// How many datagrams one frame reads at most (the rest wait for the next
/// frame, so a flood cannot stall the schedule).
const MAX_DATAGRAMS_PER_FRAME: usize = 4096;

/// How the station enters a session when it starts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Start {
    /// Create a session (this station becomes its master).
    Create,
    /// Join the session of the station at this address.
    Join(SocketAddr),
    /// Do nothing: call [`NetzStation::station`] and create or join by hand.
    Manual,
}

enum State {
    /// Classes are still being registered.
    Setup {
        registry: Registry,
        config: Box<StationConfig>,
        start: Start,
    },
    Running(Box<Mutex<Station>>),
    /// Only while switching from `Setup` to `Running`.
    Switching,
}

/// The sans-IO station the plugin drives.
///
/// Before the first frame it holds the class registry (see
/// [`NetzAppExt`](crate::NetzAppExt)); in the first frame's input stage the
/// station is made and creates or joins the session.
#[derive(Resource)]
pub struct NetzStation {
    state: State,
    /// Objects an operation may have changed (updates applied, methods run,
    /// masters moved), recorded by an operation callback of the station.
    touched: Arc<Mutex<HashSet<DOHandle>>>,
}

impl NetzStation {
    pub(crate) fn new(config: StationConfig, start: Start) -> Self {
        NetzStation {
            state: State::Setup {
                registry: Registry::new(),
                config: Box::new(config),
                start,
            },
            touched: Arc::default(),
        }
    }

    pub(crate) fn registry_mut(&mut self) -> Option<&mut Registry> {
        match &mut self.state {
            State::Setup { registry, .. } => Some(registry),
            _ => None,
        }
    }

    /// The station, once it started (from the first frame on).
    pub fn station(&mut self) -> Option<&mut Station> {
        match &mut self.state {
            State::Running(s) => Some(s.get_mut().unwrap_or_else(|e| e.into_inner())),
            _ => None,
        }
    }

    /// Makes the station and enters the session, once.
    fn start(&mut self, now: netz_core::Instant, local: SocketAddr) {
        if !matches!(self.state, State::Setup { .. }) {
            return;
        }
        let State::Setup {
            registry,
            mut config,
            start,
        } = std::mem::replace(&mut self.state, State::Switching)
        else {
            return;
        };
        if let Some(sec) = config.security.as_mut() {
            // The core checks token expiry against this origin + now.
            if sec.clock_origin_ms == 0 {
                let unix_ms = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_millis() as u64)
                    .unwrap_or(0);
                sec.clock_origin_ms = unix_ms.saturating_sub(now.as_micros() / 1000);
            }
        }
        let mut station = Station::new(*config, Arc::new(registry));
        // The core has no "this object changed" event: the operations that
        // change an object's datasets are watched instead (last, after the
        // operation and every other callback).
        for kind in [
            OperationKind::UpdateDataSet,
            OperationKind::CallMethod,
            OperationKind::ChangeMasterStation,
        ] {
            let touched = self.touched.clone();
            let r = station.register_operation_callback(Some(kind), 1024, move |op| {
                if let Some(h) = op.associated_do() {
                    touched.lock().unwrap_or_else(|e| e.into_inner()).insert(h);
                }
            });
            if let Err(e) = r {
                tracing::warn!(error = %e, "cannot watch operations; datasets will not follow");
            }
        }
        let r = match start {
            Start::Create => station.create_session(now, local),
            Start::Join(contact) => station.join(now, local, contact),
            Start::Manual => Ok(()),
        };
        if let Err(e) = r {
            tracing::warn!(error = %e, "the station could not enter the session");
        }
        self.state = State::Running(Box::new(Mutex::new(station)));
    }
}

/// The plugin's non-blocking UDP socket.
#[derive(Resource, Debug)]
pub struct NetzSocket {
    socket: UdpSocket,
    local_addr: SocketAddr,
}

impl NetzSocket {
    pub(crate) fn new(socket: UdpSocket) -> std::io::Result<Self> {
        socket.set_nonblocking(true)?;
        let local_addr = socket.local_addr()?;
        Ok(NetzSocket { socket, local_addr })
    }

    /// The address the socket is bound to.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }
}

/// What the station knows of the session, refreshed every frame.
#[derive(Resource, Clone, Debug, Default, PartialEq, Eq)]
pub struct NetzSession {
    /// Whether this station is in the session.
    pub in_session: bool,
    /// This station's id (`StationId::NONE` before it is in a session).
    pub local: StationId,
    /// The session master.
    pub session_master: StationId,
    /// Every station of the session, this one included.
    pub stations: Vec<StationInfo>,
    /// The socket's address.
    pub local_addr: Option<SocketAddr>,
}

impl NetzSession {
    /// Whether this station is the session master.
    pub fn is_session_master(&self) -> bool {
        self.in_session && self.local == self.session_master
    }
}

/// The entities whose objects an operation may have changed since the last
/// frame: the input stage ([`NetzSet::SyncIn`](crate::NetzSet::SyncIn))
/// looks at their datasets, and only at theirs.
#[derive(Resource, Default, Debug)]
pub struct TouchedObjects(pub Vec<bevy_ecs::entity::Entity>);

/// Fills [`TouchedObjects`] for this frame (after the events, so that
/// objects spawned this frame have their entity).
pub(crate) fn collect_touched(
    station: Res<NetzStation>,
    entities: Res<NetzEntities>,
    mut touched: ResMut<TouchedObjects>,
) {
    touched.0.clear();
    let mut set = station.touched.lock().unwrap_or_else(|e| e.into_inner());
    touched
        .0
        .extend(set.drain().filter_map(|h| entities.get(h)));
}

/// Objects whose master changed this frame and wait for [`Station::update`].
#[derive(Resource, Default, Debug)]
pub struct PendingUpdates(pub HashSet<DOHandle>);

/// The session messages, bundled for the event system.
#[derive(SystemParam)]
pub(crate) struct SessionWriters<'w> {
    joined: MessageWriter<'w, SessionJoined>,
    join_failed: MessageWriter<'w, JoinFailed>,
    station_joined: MessageWriter<'w, StationJoined>,
    station_left: MessageWriter<'w, StationLeft>,
    station_failed: MessageWriter<'w, StationFailed>,
    master_changed: MessageWriter<'w, SessionMasterChanged>,
    disconnected: MessageWriter<'w, Disconnected>,
    migration: MessageWriter<'w, MigrationEvent>,
    raw: MessageWriter<'w, NetzEvent>,
}

/// The object messages, bundled for the event system.
#[derive(SystemParam)]
pub(crate) struct ObjectWriters<'w> {
    discovered: MessageWriter<'w, ObjectDiscovered>,
    removed: MessageWriter<'w, ObjectRemoved>,
    master_changed: MessageWriter<'w, ObjectMasterChanged>,
}

/// Input stage: reads the clock, starts the station in the first frame,
/// feeds it every datagram waiting on the socket, then lets time pass.
pub(crate) fn receive(
    mut station: ResMut<NetzStation>,
    mut clock: ResMut<NetzClock>,
    socket: Res<NetzSocket>,
) {
    let now = clock.tick();
    station.start(now, socket.local_addr);
    let Some(st) = station.station() else {
        return;
    };
    let mut buf = vec![0u8; MAX_DATAGRAM];
    for _ in 0..MAX_DATAGRAMS_PER_FRAME {
        match socket.socket.recv_from(&mut buf) {
            Ok((n, from)) => st.handle_datagram(now, from, &buf[..n]),
            Err(e) if e.kind() == ErrorKind::WouldBlock => break,
            // ICMP errors of earlier sends (a peer that went away) surface
            // here on some systems: the station's failure detection is the
            // authority on peers, so go on reading.
            Err(e)
                if matches!(
                    e.kind(),
                    ErrorKind::ConnectionReset | ErrorKind::ConnectionRefused
                ) => {}
            Err(e) => {
                tracing::debug!(error = %e, "recv_from failed");
                break;
            }
        }
    }
    // Every frame, so that calls made by systems carry this frame's time.
    st.handle_timeout(now);
}

/// Turns the station's events into entities and messages; runs after the
/// input stage and again before the output stage (for what systems caused).
#[allow(clippy::too_many_arguments)]
pub(crate) fn process_events(
    mut commands: Commands<'_, '_>,
    mut station: ResMut<NetzStation>,
    classes: Res<NetzClasses>,
    mut entities: ResMut<NetzEntities>,
    mut objects: Query<&mut NetzObject>,
    mut session: ResMut<NetzSession>,
    socket: Res<NetzSocket>,
    mut s: SessionWriters,
    mut o: ObjectWriters,
) {
    let Some(st) = station.station() else {
        return;
    };
    let mut reconcile = false;
    while let Some(event) = st.poll_event() {
        match &event {
            Event::SessionCreated { id } => {
                s.joined.write(SessionJoined {
                    id: *id,
                    session_master: *id,
                    created: true,
                });
                reconcile = true;
            }
            Event::Joined { id, session_master } => {
                s.joined.write(SessionJoined {
                    id: *id,
                    session_master: *session_master,
                    created: false,
                });
                reconcile = true;
            }
            Event::JoinFailed(e) => {
                s.join_failed.write(JoinFailed(e.clone()));
            }
            Event::StationJoined(info) => {
                s.station_joined.write(StationJoined(info.clone()));
            }
            Event::StationLeft(id) => {
                s.station_left.write(StationLeft(*id));
            }
            Event::StationFailed(id) => {
                s.station_failed.write(StationFailed(*id));
            }
            Event::SessionMasterChanged { new_master } => {
                s.master_changed.write(SessionMasterChanged {
                    new_master: *new_master,
                });
            }
            Event::Disconnected { reason } => {
                s.disconnected.write(Disconnected {
                    reason: reason.clone(),
                });
            }
            Event::ObjectAdded { handle, .. } => {
                spawn_object(st, &classes, &mut entities, &mut commands, *handle, &mut o);
            }
            Event::ObjectRemoved(handle) => {
                if let Some(entity) = entities.by_handle.remove(handle) {
                    // `try_`: the game may have despawned it already.
                    commands.entity(entity).try_despawn();
                    o.removed.write(ObjectRemoved {
                        entity,
                        handle: *handle,
                    });
                }
            }
            Event::MasterChanged { handle, master } => {
                if let Some(&entity) = entities.by_handle.get(handle) {
                    let role = role_of(st, *master);
                    if let Ok(mut obj) = objects.get_mut(entity) {
                        obj.role = role;
                        obj.master = *master;
                    } else {
                        // Spawned this frame; its command is not applied yet.
                        commands.entity(entity).try_insert(NetzObject {
                            handle: *handle,
                            role,
                            master: *master,
                        });
                    }
                    o.master_changed.write(ObjectMasterChanged {
                        entity,
                        handle: *handle,
                        master: *master,
                        role,
                    });
                }
            }
            other => {
                if let Some(m) = MigrationEvent::from_event(other) {
                    s.migration.write(m);
                }
            }
        }
        s.raw.write(NetzEvent(event));
    }
    if reconcile {
        // Objects in the store before the session event (well-known ones).
        for handle in st.objects() {
            spawn_object(st, &classes, &mut entities, &mut commands, handle, &mut o);
        }
    }
    let fresh = NetzSession {
        in_session: st.is_in_session(),
        local: st.id(),
        session_master: st.session_master(),
        stations: st.stations(),
        local_addr: Some(socket.local_addr),
    };
    if *session != fresh {
        *session = fresh;
    }
}

fn role_of(st: &Station, master: StationId) -> Role {
    if master == st.id() {
        Role::Master
    } else {
        Role::Duplica
    }
}

fn spawn_object(
    st: &Station,
    classes: &NetzClasses,
    entities: &mut NetzEntities,
    commands: &mut Commands<'_, '_>,
    handle: DOHandle,
    o: &mut ObjectWriters,
) {
    if !handle.class_id().is_user() || entities.by_handle.contains_key(&handle) {
        return;
    }
    let Some(master) = st.master_of(handle) else {
        return;
    };
    let obj = NetzObject {
        handle,
        role: role_of(st, master),
        master,
    };
    let entity = match classes.spawners.get(&handle.class_id()) {
        Some(spawn) => spawn(st, handle, obj, commands),
        None => commands.spawn(obj).id(),
    };
    entities.by_handle.insert(handle, entity);
    o.discovered.write(ObjectDiscovered {
        entity,
        handle,
        role: obj.role,
    });
}

/// Output stage, first half: sends the updates of the masters whose
/// components or objects changed.
pub(crate) fn send_updates(
    mut station: ResMut<NetzStation>,
    clock: Res<NetzClock>,
    mut pending: ResMut<PendingUpdates>,
) {
    if pending.0.is_empty() {
        return;
    }
    let now = clock.now();
    let Some(st) = station.station() else {
        return;
    };
    let mut handles: Vec<DOHandle> = pending.0.drain().collect();
    handles.sort();
    for h in handles {
        if let Err(e) = st.update(now, h) {
            tracing::debug!(object = ?h, error = %e, "update not sent");
        }
    }
}

/// Output stage, last: hands every datagram the station produced to the
/// socket and reports completed calls.
pub(crate) fn transmit(
    mut station: ResMut<NetzStation>,
    clock: Res<NetzClock>,
    socket: Res<NetzSocket>,
) {
    let now = clock.now();
    let Some(st) = station.station() else {
        return;
    };
    while let Some(t) = st.poll_transmit(now) {
        match socket.socket.send_to(&t.contents, t.destination) {
            Ok(_) => {}
            // A full send buffer loses the datagram like the network
            // would; the link layer sends reliable messages again.
            Err(e) => tracing::debug!(to = %t.destination, error = %e, "send_to failed"),
        }
    }
}

/// Writes an [`RmcCompleted`] for every call that completed.
pub(crate) fn poll_calls(
    mut pending: ResMut<PendingCalls>,
    mut done: MessageWriter<'_, RmcCompleted>,
) {
    pending.poll(|m| {
        done.write(m);
    });
}

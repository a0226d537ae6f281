//! Heap kept per master and per duplica, measured with the counting
//! allocator of [`crate::alloc`] (the calling binary must install it as its
//! global allocator; otherwise every figure is zero).

use crate::alloc;
use crate::classes::{registry, Unit};
use crate::mesh::Mesh;

/// Bytes of heap per object, netz's bookkeeping only.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MemoryReport {
    /// Objects measured.
    pub objects: usize,
    /// Bytes per master on a station with no other station.
    pub master_alone: f64,
    /// Bytes per master on a station with one duplica station.
    pub master: f64,
    /// Bytes per duplica.
    pub duplica: f64,
    /// The size of the user object, subtracted from the figures above.
    pub user_object: usize,
}

/// Publishes `objects` units and measures what each master and each
/// duplica keeps once every message was delivered and acknowledged.
pub fn measure(objects: usize) -> MemoryReport {
    let user = std::mem::size_of::<Unit>();
    let master_alone = {
        let mut mesh = Mesh::with_attribution(1, registry());
        mesh.settle();
        let before = alloc::net(1);
        publish(&mut mesh, objects);
        mesh.settle();
        (alloc::net(1) - before) as f64 / objects as f64 - user as f64
    };
    let mut mesh = Mesh::with_attribution(2, registry());
    mesh.settle();
    let (m0, d0) = (alloc::net(1), alloc::net(2));
    publish(&mut mesh, objects);
    mesh.settle();
    let master = (alloc::net(1) - m0) as f64 / objects as f64 - user as f64;
    let duplica = (alloc::net(2) - d0) as f64 / objects as f64 - user as f64;
    assert!(mesh.station(1).duplicas().len() >= objects);
    MemoryReport {
        objects,
        master_alone,
        master,
        duplica,
        user_object: user,
    }
}

fn publish(mesh: &mut Mesh, objects: usize) {
    for k in 0..objects {
        mesh.with_quiet(0, |st, now| {
            drop(st.publish(now, Unit::default()).expect("published"));
        });
        if k % 256 == 255 {
            mesh.pump();
        }
    }
    mesh.pump();
}

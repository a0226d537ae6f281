//! server.json reading/writing and the allocation watcher.

use std::time::Duration;

use netz_host::sdk::{AllocationEvent, AllocationWatcher, QueryType, ServerJson};

fn temp_dir(name: &str) -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("netz-host-sdk-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

#[test]
fn server_json_numbers_are_strings_and_variables_are_flat() {
    let mut j = ServerJson {
        server_id: 12,
        port: 9000,
        query_port: 9010,
        query_type: "sqp".into(),
        fleet_id: "f".into(),
        ..ServerJson::default()
    };
    j.variables.insert("mode".into(), "ctf".into());
    let v: serde_json::Value = serde_json::to_value(&j).unwrap();
    assert_eq!(v["serverID"], "12");
    assert_eq!(v["port"], "9000");
    assert_eq!(v["queryPort"], "9010");
    assert_eq!(v["queryType"], "sqp");
    assert_eq!(v["allocatedUUID"], "");
    assert_eq!(v["mode"], "ctf");
    for key in [
        "machineID",
        "fleetID",
        "regionID",
        "regionName",
        "ip",
        "ipv6",
        "serverLogDir",
    ] {
        assert!(v.get(key).is_some(), "{key} missing");
    }
    let back: ServerJson = serde_json::from_value(v).unwrap();
    assert_eq!(back, j);
    assert_eq!(back.query_type(), Some(QueryType::Sqp));
    assert_eq!(back.allocation(), None);
    // Numbers written as numbers are accepted too.
    let n: ServerJson =
        serde_json::from_str(r#"{"allocatedUUID":"a","serverID":3,"port":1,"queryPort":"2"}"#)
            .unwrap();
    assert_eq!(
        (n.server_id, n.port, n.query_port, n.allocation()),
        (3, 1, 2, Some("a"))
    );
}

#[test]
fn watcher_reports_allocation_changes() {
    let dir = temp_dir("watch");
    let path = dir.join("server.json");
    let mut j = ServerJson {
        server_id: 1,
        port: 1,
        query_port: 2,
        ..ServerJson::default()
    };
    j.write_atomic(&path).unwrap();
    let mut w = AllocationWatcher::new(&path, Duration::from_millis(10));
    assert_eq!(w.poll(), None);
    j.allocated_uuid = "a1".into();
    j.write_atomic(&path).unwrap();
    assert_eq!(
        w.wait(Duration::from_secs(5)),
        Some(AllocationEvent::Allocated("a1".into()))
    );
    assert_eq!(w.current(), Some("a1"));
    j.allocated_uuid = "a2".into();
    j.write_atomic(&path).unwrap();
    assert_eq!(w.poll(), Some(AllocationEvent::Deallocated("a1".into())));
    assert_eq!(w.poll(), Some(AllocationEvent::Allocated("a2".into())));
    j.allocated_uuid.clear();
    j.write_atomic(&path).unwrap();
    assert_eq!(w.poll(), Some(AllocationEvent::Deallocated("a2".into())));
    assert_eq!(w.wait(Duration::from_millis(50)), None);
    let _ = std::fs::remove_dir_all(&dir);
}

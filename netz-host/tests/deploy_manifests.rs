//! `deploy/agones/`, checked as far as can be without a cluster: every
//! manifest parses, names only fields Agones defines for its kind (a typo
//! such as `periodSecond` fails), the names agree across files, and the
//! server's drain fits in the pod's grace period.

use std::path::PathBuf;

use serde_yaml::Value;

fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../deploy/agones")
}

fn load(name: &str) -> Value {
    let text = std::fs::read_to_string(dir().join(name)).unwrap();
    serde_yaml::from_str(&text).unwrap_or_else(|e| panic!("{name}: {e}"))
}

/// The shape of Agones' resources, as far as the manifests use them.
enum Shape {
    /// A scalar of any kind.
    Leaf,
    /// An object with these fields (each optional).
    Obj(Vec<(&'static str, Shape)>),
    /// An object with any keys, each of this shape.
    Map(Box<Shape>),
    /// A list of this shape.
    List(Box<Shape>),
    /// Kubernetes' own (a pod template): not Agones' to check.
    Any,
}

use Shape::*;

fn obj(fields: Vec<(&'static str, Shape)>) -> Shape {
    Obj(fields)
}

fn object_meta() -> Shape {
    obj(vec![
        ("name", Leaf),
        ("namespace", Leaf),
        ("generateName", Leaf),
        ("labels", Map(Box::new(Leaf))),
        ("annotations", Map(Box::new(Leaf))),
    ])
}

/// `GameServerSpec` (agones.dev/v1).
fn game_server_spec() -> Shape {
    obj(vec![
        ("container", Leaf),
        (
            "ports",
            List(Box::new(obj(vec![
                ("name", Leaf),
                ("portPolicy", Leaf),
                ("container", Leaf),
                ("containerPort", Leaf),
                ("hostPort", Leaf),
                ("protocol", Leaf),
                ("range", Leaf),
            ]))),
        ),
        (
            "health",
            obj(vec![
                ("disabled", Leaf),
                ("periodSeconds", Leaf),
                ("failureThreshold", Leaf),
                ("initialDelaySeconds", Leaf),
            ]),
        ),
        ("scheduling", Leaf),
        (
            "sdkServer",
            obj(vec![
                ("logLevel", Leaf),
                ("grpcPort", Leaf),
                ("httpPort", Leaf),
            ]),
        ),
        ("players", obj(vec![("initialCapacity", Leaf)])),
        (
            "counters",
            Map(Box::new(obj(vec![("count", Leaf), ("capacity", Leaf)]))),
        ),
        (
            "lists",
            Map(Box::new(obj(vec![
                ("capacity", Leaf),
                ("values", List(Box::new(Leaf))),
            ]))),
        ),
        ("eviction", obj(vec![("safe", Leaf)])),
        ("template", Any),
    ])
}

fn fleet_spec() -> Shape {
    obj(vec![
        ("replicas", Leaf),
        ("allocationOverflow", Any),
        (
            "strategy",
            obj(vec![
                ("type", Leaf),
                (
                    "rollingUpdate",
                    obj(vec![("maxSurge", Leaf), ("maxUnavailable", Leaf)]),
                ),
            ]),
        ),
        ("scheduling", Leaf),
        ("priorities", Any),
        (
            "template",
            obj(vec![
                ("metadata", object_meta()),
                ("spec", game_server_spec()),
            ]),
        ),
    ])
}

fn fleet_autoscaler_spec() -> Shape {
    let capacity_policy = || {
        obj(vec![
            ("key", Leaf),
            ("bufferSize", Leaf),
            ("minCapacity", Leaf),
            ("maxCapacity", Leaf),
        ])
    };
    obj(vec![
        ("fleetName", Leaf),
        (
            "policy",
            obj(vec![
                ("type", Leaf),
                (
                    "buffer",
                    obj(vec![
                        ("bufferSize", Leaf),
                        ("minReplicas", Leaf),
                        ("maxReplicas", Leaf),
                    ]),
                ),
                ("webhook", Any),
                ("counter", capacity_policy()),
                ("list", capacity_policy()),
            ]),
        ),
        (
            "sync",
            obj(vec![
                ("type", Leaf),
                ("fixedInterval", obj(vec![("seconds", Leaf)])),
            ]),
        ),
    ])
}

fn allocation_spec() -> Shape {
    let selector = || {
        obj(vec![
            ("matchLabels", Map(Box::new(Leaf))),
            ("matchExpressions", Any),
            ("gameServerState", Leaf),
            (
                "players",
                obj(vec![("minAvailable", Leaf), ("maxAvailable", Leaf)]),
            ),
            ("counters", Any),
            ("lists", Any),
        ])
    };
    obj(vec![
        ("selectors", List(Box::new(selector()))),
        ("scheduling", Leaf),
        ("priorities", Any),
        (
            "metadata",
            obj(vec![
                ("labels", Map(Box::new(Leaf))),
                ("annotations", Map(Box::new(Leaf))),
            ]),
        ),
        (
            "counters",
            Map(Box::new(obj(vec![
                ("action", Leaf),
                ("amount", Leaf),
                ("capacity", Leaf),
            ]))),
        ),
        (
            "lists",
            Map(Box::new(obj(vec![
                ("addValues", List(Box::new(Leaf))),
                ("capacity", Leaf),
            ]))),
        ),
        ("multiClusterSetting", Any),
    ])
}

/// Every key of `v` that `shape` does not define, with its path.
fn unknown(v: &Value, shape: &Shape, path: &str, out: &mut Vec<String>) {
    match (shape, v) {
        (Any, _) | (Leaf, _) | (_, Value::Null) => {}
        (Obj(fields), Value::Mapping(m)) => {
            for (k, val) in m {
                let k = k.as_str().unwrap_or("?");
                match fields.iter().find(|(n, _)| *n == k) {
                    Some((_, s)) => unknown(val, s, &format!("{path}.{k}"), out),
                    None => out.push(format!("{path}.{k}")),
                }
            }
        }
        (Map(s), Value::Mapping(m)) => {
            for (k, val) in m {
                unknown(
                    val,
                    s,
                    &format!("{path}.{}", k.as_str().unwrap_or("?")),
                    out,
                );
            }
        }
        (List(s), Value::Sequence(items)) => {
            for (i, item) in items.iter().enumerate() {
                unknown(item, s, &format!("{path}[{i}]"), out);
            }
        }
        (_, other) => out.push(format!("{path}: unexpected {other:?}")),
    }
}

fn check(name: &str, api: &str, kind: &str, spec: Shape) -> Value {
    let doc = load(name);
    assert_eq!(doc["apiVersion"].as_str(), Some(api), "{name}");
    assert_eq!(doc["kind"].as_str(), Some(kind), "{name}");
    let mut bad = Vec::new();
    unknown(&doc["metadata"], &object_meta(), "metadata", &mut bad);
    unknown(&doc["spec"], &spec, "spec", &mut bad);
    assert!(
        bad.is_empty(),
        "{name}: fields Agones does not define: {bad:?}"
    );
    doc
}

/// The `--drain-ms` of the Dockerfile's entrypoint, in seconds.
fn drain_seconds() -> u64 {
    let docker = std::fs::read_to_string(dir().join("Dockerfile")).unwrap();
    let entry = docker
        .split("ENTRYPOINT")
        .nth(1)
        .expect("an ENTRYPOINT")
        .replace("\\\n", " ");
    assert!(entry.contains("\"netz-host\", \"wrap\""), "{entry}");
    assert!(entry.contains("\"netz-station\""), "{entry}");
    let ms: u64 = entry
        .split("\"--drain-ms\",")
        .nth(1)
        .and_then(|r| r.trim().trim_start_matches('"').split('"').next())
        .and_then(|n| n.parse().ok())
        .expect("--drain-ms in the entrypoint");
    ms.div_ceil(1000)
}

fn grace(game_server_spec: &Value) -> u64 {
    game_server_spec["template"]["spec"]["terminationGracePeriodSeconds"]
        .as_u64()
        .expect("terminationGracePeriodSeconds")
}

#[test]
fn the_manifests_name_only_what_agones_defines() {
    let gs = check(
        "gameserver.yaml",
        "agones.dev/v1",
        "GameServer",
        game_server_spec(),
    );
    let fleet = check("fleet.yaml", "agones.dev/v1", "Fleet", fleet_spec());
    let fas = check(
        "fleetautoscaler.yaml",
        "autoscaling.agones.dev/v1",
        "FleetAutoscaler",
        fleet_autoscaler_spec(),
    );
    let gsa = check(
        "gameserverallocation.yaml",
        "allocation.agones.dev/v1",
        "GameServerAllocation",
        allocation_spec(),
    );
    // The names agree.
    let fleet_name = fleet["metadata"]["name"].as_str().unwrap();
    assert_eq!(fas["spec"]["fleetName"].as_str(), Some(fleet_name));
    assert_eq!(
        gsa["spec"]["selectors"][0]["matchLabels"]["agones.dev/fleet"].as_str(),
        Some(fleet_name)
    );
    // What the server needs: its UDP port, the players counter and list
    // netz-host's SDK also predefines, the health it pings.
    for spec in [&gs["spec"], &fleet["spec"]["template"]["spec"]] {
        assert_eq!(spec["ports"][0]["containerPort"].as_u64(), Some(7777));
        assert_eq!(spec["ports"][0]["protocol"].as_str(), Some("UDP"));
        assert!(spec["counters"]["players"]["capacity"].as_u64().is_some());
        assert!(spec["lists"]["players"]["capacity"].as_u64().is_some());
        assert!(spec["health"]["periodSeconds"].as_u64().unwrap() >= 2);
        // The drain ends before Kubernetes' SIGKILL.
        assert!(
            drain_seconds() < grace(spec),
            "drain {} s, grace {} s",
            drain_seconds(),
            grace(spec)
        );
    }
}

#[test]
fn a_typo_in_a_field_is_caught() {
    let doc: Value = serde_yaml::from_str(
        "spec:\n  health:\n    periodSecond: 5\n  ports:\n    - containerPort: 1\n      protocl: UDP\n",
    )
    .unwrap();
    let mut bad = Vec::new();
    unknown(&doc["spec"], &game_server_spec(), "spec", &mut bad);
    assert_eq!(
        bad,
        vec!["spec.health.periodSecond", "spec.ports[0].protocl"]
    );
}

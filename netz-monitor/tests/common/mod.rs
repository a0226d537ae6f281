//! What the monitor's tests share: a small DO class, a session of
//! stations on loopback, and a minimal HTTP client.
#![allow(dead_code)]

use netz_core::{
    CallContext, DataSet, DecodeError, DispatchError, DoClass, MethodId, MethodInfo, MethodKind,
    ObjectProxy, ProcessType, Registry, StationId, Topology,
};
use netz_net::{NetConfig, NetStation};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

pub const WAIT: Duration = Duration::from_secs(10);

/// A dataset with a number and a label.
#[derive(Default)]
pub struct Tally {
    pub count: u32,
    pub label: String,
    pub revision: u8,
}

impl DataSet for Tally {
    fn name(&self) -> &'static str {
        "Tally"
    }
    fn field_names(&self) -> &'static [&'static str] {
        &["count", "label"]
    }
    fn field_revisions(&self) -> &'static [u8] {
        &[0, 0]
    }
    fn encode_field(&self, index: usize, out: &mut Vec<u8>) {
        match index {
            0 => netz_core::encode_value(&self.count, out),
            _ => netz_core::encode_value(&self.label, out),
        }
    }
    fn decode_field(&mut self, index: usize, input: &mut &[u8]) -> Result<(), DecodeError> {
        match index {
            0 => self.count = netz_core::decode_value(input, "count")?,
            _ => self.label = netz_core::decode_value(input, "label")?,
        }
        Ok(())
    }
    fn received_revision(&self) -> u8 {
        self.revision
    }
    fn set_received_revision(&mut self, revision: u8) {
        self.revision = revision;
    }
}

/// A DO class with one dataset.
#[derive(Default)]
pub struct Counter {
    pub tally: Tally,
}

impl DoClass for Counter {
    const CLASS_NAME: &'static str = "Counter";
    const METHODS: &'static [MethodInfo] = &[MethodInfo {
        name: "ping",
        kind: MethodKind::Rmc,
    }];
    type Proxy<'a> = ObjectProxy<'a, Self>;
    fn dispatch(
        &mut self,
        _call: &mut CallContext<'_>,
        method: MethodId,
        _args: &[u8],
    ) -> Result<Vec<u8>, DispatchError> {
        match method.0 {
            0 => Ok(Vec::new()),
            _ => Err(DispatchError::UnknownMethod(method)),
        }
    }
    fn new_duplica() -> Self {
        Counter::default()
    }
    fn dataset_count(&self) -> usize {
        1
    }
    fn dataset(&self, index: usize) -> Option<&dyn DataSet> {
        (index == 0).then_some(&self.tally as &dyn DataSet)
    }
    fn dataset_mut(&mut self, index: usize) -> Option<&mut dyn DataSet> {
        (index == 0).then_some(&mut self.tally as &mut dyn DataSet)
    }
}

pub fn registry() -> Arc<Registry> {
    let mut r = Registry::new();
    r.register::<Counter>().expect("register Counter");
    Arc::new(r)
}

pub fn config(p: ProcessType, name: &str, topology: Topology) -> NetConfig {
    NetConfig::new(p, name)
        .topology(topology)
        .heartbeat_interval(Duration::from_millis(100))
        .failure_timeout(Duration::from_millis(800))
}

/// Starts a session: the first station creates it, the others join it.
pub async fn session(kinds: &[(ProcessType, &str)], topology: Topology) -> Vec<NetStation> {
    let reg = registry();
    let mut v: Vec<NetStation> = Vec::new();
    for (p, name) in kinds {
        let s = NetStation::bind(
            "127.0.0.1:0".parse().unwrap(),
            config(*p, name, topology),
            reg.clone(),
        )
        .await
        .expect("bind");
        match v.first() {
            None => {
                s.create_session().expect("create");
            }
            Some(first) => {
                s.join(first.local_addr()).await.expect("join");
            }
        }
        v.push(s);
    }
    let n = v.len();
    for s in &v {
        assert!(s.wait_until(WAIT, |st| st.stations().len() == n).await);
    }
    v
}

/// Moves an object's master from `from` to station `to`.
pub fn migrate(from: &NetStation, h: netz_core::DOHandle, to: StationId) {
    from.with(|st, now| st.migrate(now, h, to))
        .expect("migrate");
}

/// A GET over a fresh connection: the status and the body.
pub async fn get(addr: SocketAddr, path: &str) -> (u16, String) {
    let fut = async {
        let mut s = tokio::net::TcpStream::connect(addr).await.expect("connect");
        let req = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
        s.write_all(req.as_bytes()).await.expect("write");
        let mut buf = Vec::new();
        s.read_to_end(&mut buf).await.expect("read");
        let text = String::from_utf8_lossy(&buf).to_string();
        let (head, body) = text.split_once("\r\n\r\n").expect("a response");
        let status = head
            .split_whitespace()
            .nth(1)
            .and_then(|c| c.parse().ok())
            .expect("a status");
        (status, body.to_string())
    };
    tokio::time::timeout(Duration::from_secs(5), fut)
        .await
        .expect("the request answered in time")
}

/// A GET whose body is JSON.
pub async fn get_json(addr: SocketAddr, path: &str) -> (u16, serde_json::Value) {
    let (status, body) = get(addr, path).await;
    let v = serde_json::from_str(&body).unwrap_or_else(|e| panic!("{path}: {e}: {body}"));
    (status, v)
}

/// Polls `path` until `pred` holds on its JSON (or fails after `WAIT`).
pub async fn poll_json(
    addr: SocketAddr,
    path: &str,
    mut pred: impl FnMut(&serde_json::Value) -> bool,
) -> serde_json::Value {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let (status, v) = get_json(addr, path).await;
        assert_eq!(status, 200, "{path}: {v}");
        if pred(&v) {
            return v;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{path} never matched; last {v:#}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

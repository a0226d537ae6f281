//! Station processes for the multi-process tests: spawned from the
//! `netz-station` binary, spoken to over stdin/stdout, always killed and
//! reaped (the guard's `Drop` runs even when a test fails).
#![allow(dead_code)]

pub mod proxy;

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{channel, Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

/// How long any single wait of the tests lasts at most.
pub const WAIT: Duration = Duration::from_secs(15);

/// Fast timeouts so that failures are detected in well under a second.
pub const FAST: &[&str] = &[
    "--heartbeat-ms",
    "50",
    "--failure-ms",
    "1000",
    "--lifetime-s",
    "120",
];

/// One `score` line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScoreLine {
    pub handle: u64,
    pub master: u32,
    pub value: i64,
    pub owner: String,
    pub recover: bool,
}

/// One `status` line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Status {
    pub id: u32,
    pub master: u32,
    pub stations: Vec<u32>,
}

/// A running station process.
pub struct Proc {
    pub name: String,
    child: Child,
    stdin: Option<ChildStdin>,
    lines: Receiver<String>,
    /// Every line it printed so far.
    pub log: Vec<String>,
    pub addr: String,
    pub id: u32,
}

fn field<'a>(line: &'a str, key: &str) -> Option<&'a str> {
    line.split_whitespace()
        .find_map(|w| w.strip_prefix(key)?.strip_prefix('='))
}

impl Proc {
    /// Spawns `netz-station` with `args`; does not wait for anything.
    pub fn spawn(name: &str, args: &[&str]) -> Proc {
        let mut child = Command::new(env!("CARGO_BIN_EXE_netz-station"))
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn netz-station");
        let stdout = child.stdout.take().expect("stdout");
        let stdin = child.stdin.take();
        let (tx, rx) = channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Proc {
            name: name.into(),
            child,
            stdin,
            lines: rx,
            log: Vec::new(),
            addr: String::new(),
            id: 0,
        }
    }

    /// Spawns a station and waits until it created or joined its session.
    pub fn start(name: &str, args: &[&str]) -> Proc {
        // The test's own flags come last and win over the fast defaults.
        let mut all: Vec<&str> = FAST.to_vec();
        all.extend_from_slice(args);
        let mut p = Proc::spawn(name, &all);
        let ready = p.expect(|l| l.starts_with("ready ") || l.starts_with("error "));
        assert!(ready.starts_with("ready"), "{name}: {ready}");
        p.addr = field(&ready, "addr").unwrap().to_string();
        let line = p.expect(|l| {
            l.starts_with("created ") || l.starts_with("joined ") || l.starts_with("error ")
        });
        assert!(!line.starts_with("error"), "{name}: {line}");
        p.id = field(&line, "id").unwrap().parse().unwrap();
        p
    }

    /// The next line matching `pred` (earlier lines are only logged); panics
    /// after [`WAIT`].
    pub fn expect(&mut self, mut pred: impl FnMut(&str) -> bool) -> String {
        let deadline = Instant::now() + WAIT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    self.log.push(line.clone());
                    if pred(&line) {
                        return line;
                    }
                }
                Err(RecvTimeoutError::Timeout) => {
                    panic!(
                        "{}: nothing matched in time; output: {:#?}",
                        self.name, self.log
                    )
                }
                Err(RecvTimeoutError::Disconnected) => {
                    panic!("{}: exited; output: {:#?}", self.name, self.log)
                }
            }
        }
    }

    /// The first line matching `pred`, among those already read or else
    /// the next ones (for events whose order with others is not fixed).
    pub fn seen_or_expect(&mut self, mut pred: impl FnMut(&str) -> bool) -> String {
        match self.log.iter().find(|l| pred(l)) {
            Some(l) => l.clone(),
            None => self.expect(pred),
        }
    }

    /// Where `line` is in the output read so far.
    pub fn position(&self, line: &str) -> Option<usize> {
        self.log.iter().position(|l| l == line)
    }

    /// Takes the process's stdin (dropping it tells the station its parent is gone).
    pub fn stdin_handle(&mut self) -> Option<ChildStdin> {
        self.stdin.take()
    }

    /// Whether it printed `line` so far.
    pub fn saw(&self, line: &str) -> bool {
        self.log.iter().any(|l| l == line)
    }

    /// Sends one command line.
    pub fn send(&mut self, cmd: &str) {
        let stdin = self.stdin.as_mut().expect("stdin open");
        writeln!(stdin, "{cmd}").expect("write to station");
        stdin.flush().expect("flush");
    }

    /// The station's `status`.
    pub fn status(&mut self) -> Status {
        self.send("status");
        let l = self.expect(|l| l.starts_with("status "));
        Status {
            id: field(&l, "id").unwrap().parse().unwrap(),
            master: field(&l, "master").unwrap().parse().unwrap(),
            stations: field(&l, "stations")
                .unwrap()
                .split(',')
                .filter(|s| !s.is_empty())
                .map(|s| s.parse().unwrap())
                .collect(),
        }
    }

    /// The station's `Score` objects, by handle.
    pub fn scores(&mut self) -> Vec<ScoreLine> {
        self.send("scores");
        let mut out = Vec::new();
        loop {
            let l = self.expect(|l| l.starts_with("score ") || l == "end");
            if l == "end" {
                return out;
            }
            out.push(ScoreLine {
                handle: field(&l, "handle").unwrap().parse().unwrap(),
                master: field(&l, "master").unwrap().parse().unwrap(),
                value: field(&l, "value").unwrap().parse().unwrap(),
                owner: field(&l, "owner").unwrap().to_string(),
                recover: field(&l, "recover").unwrap() == "true",
            });
        }
    }

    /// Polls `probe` until it returns true; panics after [`WAIT`].
    pub fn until(&mut self, what: &str, mut probe: impl FnMut(&mut Proc) -> bool) {
        let deadline = Instant::now() + WAIT;
        while Instant::now() < deadline {
            if probe(self) {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("{}: never saw {what}; output: {:#?}", self.name, self.log);
    }

    /// Sends signal `sig` (`STOP`, `CONT`, ...) to the process.
    pub fn signal(&self, sig: &str) {
        let status = Command::new("kill")
            .args([&format!("-{sig}"), &self.child.id().to_string()])
            .status()
            .expect("run kill");
        assert!(status.success(), "{}: kill -{sig} failed", self.name);
    }

    /// SIGTERM (the process decides what to do; see `wait_exit`).
    pub fn terminate(&mut self) {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("run kill");
        assert!(status.success(), "{}: kill -TERM failed", self.name);
    }

    /// SIGKILL, then reap.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Waits for the process to exit by itself; returns its exit code.
    pub fn wait_exit(&mut self) -> Option<i32> {
        let deadline = Instant::now() + WAIT;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return status.code();
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        self.kill();
        panic!("{}: did not exit; output: {:#?}", self.name, self.log);
    }

    /// Every remaining line up to its exit.
    pub fn rest(&mut self) -> Vec<String> {
        let deadline = Instant::now() + WAIT;
        while let Ok(l) = self
            .lines
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
        {
            self.log.push(l);
        }
        self.log.clone()
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        // Closing stdin alone makes a healthy station exit; kill to be sure.
        self.stdin.take();
        self.kill();
    }
}

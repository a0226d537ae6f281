//! `netz-host wrap`: runs a game server that knows neither netz-host nor
//! Agones (the demo's `netz-station`, say) and speaks for it through
//! [`crate::sdk::connect`]: `Ready` when the server prints its ready line,
//! `Health` every second while it runs, `Shutdown` when it exits 0. SIGTERM
//! and SIGINT are passed on to it (a netz server then scales in and drains),
//! and the wrapper exits with its exit code. Its stdin stays open (a
//! `netz-station` exits when stdin closes); its output is passed through.

use std::process::Stdio;
use std::sync::mpsc as std_mpsc;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};

use crate::sdk::{self, HostSdk};

/// What the SDK thread is told to do.
enum SdkCall {
    Ready,
    Health,
    Shutdown,
}

/// Runs `program args`; returns the exit code for the wrapper.
pub fn main(program: &str, args: &[String], ready_prefix: &str) -> i32 {
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("netz-host wrap: cannot start the runtime: {e}");
            return 1;
        }
    };
    rt.block_on(run(program, args, ready_prefix))
}

/// The SDK is blocking: it gets a thread, fed by a channel, so that a slow
/// host never holds up the child's output or signals.
fn sdk_thread(mut sdk: Box<dyn HostSdk>) -> std_mpsc::Sender<SdkCall> {
    let (tx, rx) = std_mpsc::channel::<SdkCall>();
    std::thread::spawn(move || {
        while let Ok(call) = rx.recv() {
            let (what, r) = match call {
                SdkCall::Ready => ("Ready", sdk.ready()),
                SdkCall::Health => ("Health", sdk.health()),
                SdkCall::Shutdown => ("Shutdown", sdk.shutdown()),
            };
            if let Err(e) = r {
                eprintln!(
                    "netz-host wrap: {what} through the {:?} SDK failed: {e}",
                    sdk.backend()
                );
            }
            match sdk.poll() {
                Ok(Some(ev)) => eprintln!("netz-host wrap: {ev:?}"),
                Ok(None) => {}
                Err(e) => eprintln!("netz-host wrap: reading the allocation failed: {e}"),
            }
        }
    });
    tx
}

async fn run(program: &str, args: &[String], ready_prefix: &str) -> i32 {
    let sdk = match sdk::connect() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("netz-host wrap: cannot reach the host's SDK: {e}");
            return 1;
        }
    };
    eprintln!("netz-host wrap: {:?} backend", sdk.backend());
    let calls = sdk_thread(sdk);
    let mut child = match tokio::process::Command::new(program)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
    {
        Ok(c) => c,
        Err(e) => {
            eprintln!("netz-host wrap: cannot start {program}: {e}");
            return 1;
        }
    };
    // Held, never written: the child's stdin stays open while we run.
    let _stdin = child.stdin.take();
    let mut lines = child.stdout.take().map(|o| BufReader::new(o).lines());
    let pid = child.id().unwrap_or(0);
    let mut sigterm =
        tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
    let mut sigint = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt()).ok();
    let mut health = tokio::time::interval(Duration::from_secs(1));
    let mut ready_sent = false;
    let status = loop {
        tokio::select! {
            st = child.wait() => break st,
            line = async {
                match lines.as_mut() {
                    Some(l) => l.next_line().await,
                    None => std::future::pending().await,
                }
            } => match line {
                Ok(Some(line)) => {
                    println!("{line}");
                    if !ready_sent && line.starts_with(ready_prefix) {
                        ready_sent = true;
                        let _ = calls.send(SdkCall::Ready);
                    }
                }
                _ => lines = None,
            },
            _ = health.tick() => {
                let _ = calls.send(SdkCall::Health);
            }
            Some(_) = async { match sigterm.as_mut() { Some(s) => s.recv().await, None => std::future::pending().await } } => {
                forward(pid, libc::SIGTERM);
            }
            Some(_) = async { match sigint.as_mut() { Some(s) => s.recv().await, None => std::future::pending().await } } => {
                forward(pid, libc::SIGINT);
            }
        }
    };
    let code = match status {
        Ok(st) => st.code().unwrap_or(1),
        Err(e) => {
            eprintln!("netz-host wrap: waiting for {program} failed: {e}");
            1
        }
    };
    if code == 0 {
        let _ = calls.send(SdkCall::Shutdown);
    }
    drop(calls);
    // Give the SDK thread a moment to deliver Shutdown.
    tokio::time::sleep(Duration::from_millis(200)).await;
    code
}

fn forward(pid: u32, signal: i32) {
    crate::process::signal_pid(pid, signal);
}

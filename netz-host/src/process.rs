//! Child processes: spawning in their own process group, signalling the
//! group, reaping, and reading memory use.

use std::time::Duration;

use tokio::process::Child;
use tokio::sync::mpsc;

/// Sends `signal` to the process group `pgid`. Errors (for example a group
/// that no longer exists) are ignored.
#[allow(unsafe_code)]
pub fn signal_group(pgid: u32, signal: i32) {
    let Ok(pgid) = i32::try_from(pgid) else {
        return;
    };
    if pgid <= 1 {
        return;
    }
    // SAFETY: kill(2) takes plain integers and touches no memory of ours;
    // a negative pid addresses the process group we created for the child.
    unsafe {
        libc::kill(-pgid, signal);
    }
}

/// Sends `signal` to the process `pid`. Errors are ignored.
#[allow(unsafe_code)]
pub fn signal_pid(pid: u32, signal: i32) {
    let Ok(pid) = i32::try_from(pid) else {
        return;
    };
    if pid <= 1 {
        return;
    }
    // SAFETY: kill(2) takes plain integers and touches no memory of ours.
    unsafe {
        libc::kill(pid, signal);
    }
}

/// Makes the child get SIGKILL when the thread that spawned it (the
/// supervisor's main loop) dies, so servers are not left behind even when
/// the supervisor itself is killed with SIGKILL. Linux only; elsewhere a
/// no-op.
#[allow(unsafe_code)]
pub fn die_with_parent(cmd: &mut tokio::process::Command) {
    #[cfg(target_os = "linux")]
    // SAFETY: the closure runs in the forked child before exec and only
    // calls prctl(2) and getppid(2), which are async-signal-safe; it
    // allocates nothing and touches no shared state.
    unsafe {
        let parent = libc::getpid();
        cmd.pre_exec(move || {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            if libc::getppid() != parent {
                // The parent died before prctl took effect.
                libc::_exit(1);
            }
            Ok(())
        });
    }
    #[cfg(not(target_os = "linux"))]
    let _ = cmd;
}

/// Resident memory of `pid` in KiB, from `/proc/<pid>/status` (`VmRSS`).
pub fn rss_kb(pid: u32) -> Option<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

/// Requests sent to the task that owns a child.
#[derive(Debug, Clone, Copy)]
pub enum ProcControl {
    /// SIGTERM the group now, SIGKILL it after the grace period.
    Stop {
        /// Time between SIGTERM and SIGKILL.
        grace: Duration,
    },
}

/// How a child ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExitInfo {
    /// Exit code, when it exited normally.
    pub code: Option<i32>,
    /// Signal, when a signal ended it.
    pub signal: Option<i32>,
}

impl ExitInfo {
    /// Exit code 0.
    pub fn success(&self) -> bool {
        self.code == Some(0)
    }
}

impl std::fmt::Display for ExitInfo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (self.code, self.signal) {
            (Some(c), _) => write!(f, "exit code {c}"),
            (None, Some(s)) => write!(f, "signal {s}"),
            _ => write!(f, "unknown exit"),
        }
    }
}

/// Owns `child` until it has been reaped: waits for it, handles stop
/// requests, and kills what is left of its process group afterwards. Calls
/// `on_exit` exactly once, after reaping.
pub async fn supervise_child(
    mut child: Child,
    pgid: u32,
    mut control: mpsc::UnboundedReceiver<ProcControl>,
    on_exit: impl FnOnce(ExitInfo),
) {
    use std::os::unix::process::ExitStatusExt;
    let far = tokio::time::Instant::now() + Duration::from_secs(86400 * 365);
    let mut kill_at: Option<tokio::time::Instant> = None;
    let mut control_open = true;
    let status = loop {
        tokio::select! {
            s = child.wait() => break s,
            c = control.recv(), if control_open => match c {
                Some(ProcControl::Stop { grace }) => {
                    signal_group(pgid, libc::SIGTERM);
                    let at = tokio::time::Instant::now() + grace;
                    kill_at = Some(kill_at.map_or(at, |k| k.min(at)));
                }
                None => control_open = false,
            },
            _ = tokio::time::sleep_until(kill_at.unwrap_or(far)), if kill_at.is_some() => {
                signal_group(pgid, libc::SIGKILL);
                kill_at = None;
            }
        }
    };
    // Whatever the leader left behind in its group goes too.
    signal_group(pgid, libc::SIGKILL);
    let info = match status {
        Ok(s) => ExitInfo {
            code: s.code(),
            signal: s.signal(),
        },
        Err(_) => ExitInfo {
            code: None,
            signal: None,
        },
    };
    on_exit(info);
}

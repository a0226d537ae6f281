//! Puts the parts together: the work folder, the control API, the
//! supervisor task, and the cleanup when it ends.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::agones;
use crate::api::{self, Access};
use crate::config::Config;
use crate::files;
use crate::supervisor::{Handle, Supervisor};

/// Name of the file, in the work folder, holding the control API's address.
pub const API_ADDR_FILE: &str = "api-addr";
/// Name of the file, in the work folder, holding the control API's bearer
/// token (mode 0600).
pub const API_TOKEN_FILE: &str = "api-token";

/// Errors from running the supervisor.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// Setting up the work folder failed.
    #[error("cannot prepare {path}: {source}")]
    Io {
        /// The path.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// Binding the control API failed.
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        /// The address.
        addr: SocketAddr,
        /// The cause.
        source: std::io::Error,
    },
}

/// Runs the supervisor until it is told to shut down (API `shutdown`,
/// SIGTERM or SIGINT). Every child is stopped and reaped before this
/// returns.
///
/// On Linux children also get SIGKILL if the thread polling this future
/// dies, so run it with `block_on` (as the binary does) or on a runtime
/// worker, not on a short-lived thread.
pub async fn run(cfg: Config) -> Result<(), RunError> {
    let cfg = Arc::new(cfg);
    let work = cfg.work_dir();
    let io = |path: &std::path::Path| {
        let path = path.to_owned();
        move |source| RunError::Io { path, source }
    };
    files::create_private_dir(&work).map_err(io(&work))?;
    let listener = tokio::net::TcpListener::bind(cfg.control.listen)
        .await
        .map_err(|source| RunError::Listen {
            addr: cfg.control.listen,
            source,
        })?;
    let addr = listener.local_addr().map_err(io(&work))?;
    let token = files::random_token().map_err(io(std::path::Path::new("/dev/urandom")))?;
    let token_file = work.join(API_TOKEN_FILE);
    files::write_atomic(&token_file, token.as_bytes()).map_err(io(&token_file))?;
    // The CLI of the same user finds the token by the API's address.
    let user_token = files::token_file_for(addr);
    if let Some(dir) = user_token.parent() {
        files::create_private_dir(dir).map_err(io(dir))?;
    }
    files::write_atomic(&user_token, token.as_bytes()).map_err(io(&user_token))?;
    let addr_file = work.join(API_ADDR_FILE);
    files::write_atomic(&addr_file, addr.to_string().as_bytes()).map_err(io(&addr_file))?;

    let (handle, jobs) = Handle::channel();
    // Every slot's Agones SDK server, bound before any server starts.
    let mut sdk_tasks = Vec::new();
    if let Some(a) = &cfg.agones {
        for i in 0..cfg.slot_count() {
            let (g, h) = (
                a.grpc_port_range[0] + i as u16,
                a.http_port_range[0] + i as u16,
            );
            let (grpc, http) = agones::bind(g, h)
                .await
                .map_err(|source| RunError::Listen {
                    addr: SocketAddr::from((std::net::Ipv4Addr::LOCALHOST, g)),
                    source,
                })?;
            let sdk = agones::SlotSdk::new(handle.clone(), i);
            sdk_tasks.push(tokio::spawn(agones::serve(sdk, grpc, http)));
        }
    }
    let supervisor = Supervisor::provision(cfg.clone(), &work, addr).map_err(io(&work))?;
    let open_connections = Arc::new(AtomicUsize::new(0));
    let access = Access {
        token,
        listen: addr,
        max_connections: cfg.control.max_connections,
    };
    let api_task = tokio::spawn(api::serve(
        listener,
        handle.clone(),
        access,
        open_connections.clone(),
    ));
    supervisor.run(jobs).await;
    api_task.abort();
    for t in &sdk_tasks {
        t.abort();
    }
    // Replies already decided (the one to `POST /shutdown` among them) are
    // written before the runtime, and with it their tasks, goes away;
    // requests that came too late are answered 503 at once.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(2);
    while open_connections.load(Ordering::SeqCst) > 0 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    drop(handle);
    let _ = std::fs::remove_file(&addr_file);
    let _ = std::fs::remove_file(&user_token);
    Ok(())
}

//! `netz-monitor`: joins a netz session as a Tool station and serves the
//! live monitor page on a loopback address it prints.
//!
//! ```text
//! netz-monitor --contact 127.0.0.1:4000 [--http 127.0.0.1:0] [--name NAME]
//!              [--client-server] [--token-file PATH --protocol-id N] [--for SECONDS]
//! ```
//!
//! It runs until Ctrl-C (or for `--for` seconds), then leaves the session.

use netz_core::{Registry, Topology};
use netz_monitor::{decode_token, join_as_tool, serve, ToolOptions};
use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

const USAGE: &str = "usage: netz-monitor --contact ADDR [--http 127.0.0.1:0] [--name NAME] \
[--client-server] [--token-file PATH --protocol-id N] [--for SECONDS]";

struct Args {
    contact: SocketAddr,
    http: SocketAddr,
    options: ToolOptions,
    run_for: Option<Duration>,
}

fn parse(args: &[String]) -> Result<Args, String> {
    let mut contact = None;
    let mut http: SocketAddr = "127.0.0.1:0".parse().map_err(|_| "internal")?;
    let mut options = ToolOptions::default();
    let mut token_file = None;
    let mut protocol_id = None;
    let mut run_for = None;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut value = |name: &str| {
            it.next()
                .cloned()
                .ok_or_else(|| format!("{name} needs a value"))
        };
        match a.as_str() {
            "--contact" => {
                let v = value("--contact")?;
                contact = Some(v.parse().map_err(|_| format!("bad address {v:?}"))?);
            }
            "--http" => {
                let v = value("--http")?;
                http = v.parse().map_err(|_| format!("bad address {v:?}"))?;
            }
            "--name" => options.name = value("--name")?,
            "--client-server" => options.topology = Topology::ClientServer,
            "--token-file" => token_file = Some(value("--token-file")?),
            "--protocol-id" => {
                let v = value("--protocol-id")?;
                protocol_id = Some(
                    v.parse::<u64>()
                        .map_err(|_| format!("bad protocol id {v:?}"))?,
                );
            }
            "--for" => {
                let v = value("--for")?;
                let secs: f64 = v.parse().map_err(|_| format!("bad duration {v:?}"))?;
                if !(secs.is_finite() && secs > 0.0) {
                    return Err(format!("bad duration {v:?}"));
                }
                run_for = Some(Duration::from_secs_f64(secs));
            }
            "-h" | "--help" => return Err(USAGE.into()),
            other => return Err(format!("unknown argument {other:?}\n{USAGE}")),
        }
    }
    let contact = contact.ok_or_else(|| format!("--contact is required\n{USAGE}"))?;
    match (token_file, protocol_id) {
        (Some(path), Some(id)) => {
            let text = std::fs::read_to_string(&path)
                .map_err(|e| format!("cannot read the token file {path:?}: {e}"))?;
            options.token = Some((decode_token(&text)?, id));
        }
        (None, None) => {}
        _ => return Err("--token-file and --protocol-id go together".into()),
    }
    Ok(Args {
        contact,
        http,
        options,
        run_for,
    })
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let args = match parse(&args) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("netz-monitor: {e}");
            return ExitCode::from(2);
        }
    };
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("netz-monitor: {e}");
            return ExitCode::FAILURE;
        }
    };
    rt.block_on(async move {
        let station =
            match join_as_tool(args.contact, Arc::new(Registry::new()), args.options).await {
                Ok(s) => s,
                Err(e) => {
                    eprintln!("netz-monitor: cannot join {}: {e}", args.contact);
                    return ExitCode::FAILURE;
                }
            };
        let monitor = match serve(station.clone(), args.http).await {
            Ok(m) => m,
            Err(e) => {
                eprintln!("netz-monitor: {e}");
                return ExitCode::FAILURE;
            }
        };
        println!(
            "monitor {} (station S{} in the session at {})",
            monitor.url(),
            station.id().0,
            args.contact
        );
        match args.run_for {
            Some(d) => tokio::time::sleep(d).await,
            None => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
        drop(monitor);
        let _ = station.leave().await;
        station.shutdown().await;
        ExitCode::SUCCESS
    })
}

//! `netz-host`: run a local fleet of game servers, and talk to it.

use std::net::SocketAddr;
use std::process::ExitCode;

use netz_host::api;
use netz_host::config::{Config, DEFAULT_LISTEN};
use serde_json::{json, Value};

const USAGE: &str = "\
netz-host: local game-server hosting supervisor

USAGE:
  netz-host run --config FILE          run the supervisor (Ctrl-C stops it and every server)
  netz-host check --config FILE        validate a config file and show the slot count
  netz-host test-server [OPTIONS]      run the test game server (used by the example fleet)
  netz-host wrap [--ready-line PREFIX] -- PROGRAM [ARGS...]
                                       run a game server that knows no SDK, speaking for it
                                       (Ready on its first output line starting with PREFIX,
                                       default ready; Health every second; Shutdown on exit 0)
                                       to netz-host or Agones, whichever hosts it

Client commands (talk to a running supervisor):
  netz-host [--api ADDR | --config FILE] COMMAND
  COMMAND:
    machine                                   machine state
    servers [SERVER_ID]                       list servers, or show one
    allocations [ALLOCATION_ID]               list allocations, or show one
    allocate --id ID [--build-config NAME] [--server SERVER_ID] [--payload TEXT | --payload-file FILE]
    deallocate ALLOCATION_ID
    reserve --for-ms MS [--server SERVER_ID]
    unreserve SERVER_ID
    hold SERVER_ID --for-ms MS
    start SERVER_ID
    stop SERVER_ID                            refused when the server is allocated
    build-config [NAME]                       show or change the active build configuration
                                              (idle servers restart at once)
    upgrade --build NAME [--max-draining N] [--max-surge N] [--drain-timeout-ms MS]
            [--ready-timeout-ms MS] [--wait]
                                              rolling upgrade to build configuration NAME: new
                                              servers join the running sessions, old ones scale
                                              in one at a time; --wait follows it to the end
                                              (exit 1 when it fails)
    upgrade-status                            the running or last rolling upgrade
    events                                    the transition log
    shutdown                                  stop every server and the supervisor

The API address is --api, else the control.listen of --config, else
$NETZ_HOST_API, else 127.0.0.1:7800. The API token is read from
--token-file, else $NETZ_HOST_TOKEN_FILE, else <work_dir>/api-token of
--config, else the copy the supervisor left for this user under
~/.local/state/netz-host/tokens (or $XDG_RUNTIME_DIR/netz-host/tokens).";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match real_main(args) {
        Ok(code) => code,
        Err(msg) => {
            eprintln!("error: {msg}");
            ExitCode::from(2)
        }
    }
}

struct Args {
    rest: Vec<String>,
}

impl Args {
    /// Removes `--name VALUE` (or `--name=VALUE`) and returns the value.
    fn option(&mut self, name: &str) -> Result<Option<String>, String> {
        let prefix = format!("{name}=");
        if let Some(pos) = self.rest.iter().position(|a| a == name) {
            if pos + 1 >= self.rest.len() {
                return Err(format!("{name} needs a value"));
            }
            let v = self.rest.remove(pos + 1);
            self.rest.remove(pos);
            return Ok(Some(v));
        }
        if let Some(pos) = self.rest.iter().position(|a| a.starts_with(&prefix)) {
            let v = self.rest.remove(pos)[prefix.len()..].to_owned();
            return Ok(Some(v));
        }
        Ok(None)
    }

    fn positional(&mut self) -> Option<String> {
        if self.rest.is_empty() {
            None
        } else {
            Some(self.rest.remove(0))
        }
    }

    fn finish(self) -> Result<(), String> {
        match self.rest.first() {
            Some(a) => Err(format!("unexpected argument {a:?}\n\n{USAGE}")),
            None => Ok(()),
        }
    }
}

fn parse_ms(name: &str, v: Option<String>) -> Result<u64, String> {
    let v = v.ok_or_else(|| format!("{name} is required"))?;
    v.parse()
        .map_err(|_| format!("{name} must be a number of milliseconds, not {v:?}"))
}

fn real_main(argv: Vec<String>) -> Result<ExitCode, String> {
    if argv.first().map(String::as_str) == Some("test-server") {
        let code = netz_host::test_server::main(&argv[1..]);
        return Ok(ExitCode::from(code.clamp(0, 255) as u8));
    }
    if argv.first().map(String::as_str) == Some("wrap") {
        return wrap(&argv[1..]);
    }
    let mut args = Args { rest: argv };
    if args.rest.iter().any(|a| a == "--help" || a == "-h") || args.rest.is_empty() {
        println!("{USAGE}");
        return Ok(ExitCode::SUCCESS);
    }
    let api_opt = args.option("--api")?;
    let config_opt = args.option("--config")?;
    let token_opt = args.option("--token-file")?;
    let cmd = args.positional().unwrap_or_default();
    match cmd.as_str() {
        "run" | "check" => {
            let path = config_opt.ok_or_else(|| format!("{cmd} needs --config FILE"))?;
            args.finish()?;
            let cfg = Config::load(&path).map_err(|e| e.to_string())?;
            if cmd == "check" {
                println!(
                    "{path}: ok, {} server slots, work dir {}",
                    cfg.slot_count(),
                    cfg.work_dir().display()
                );
                return Ok(ExitCode::SUCCESS);
            }
            return run(cfg);
        }
        "" => return Err(format!("no command given\n\n{USAGE}")),
        _ => {}
    }
    let token = api_token(token_opt, config_opt.as_deref());
    let addr = api_address(api_opt, config_opt)?;
    let seg = |s: &str| api::percent_encode(s);
    let mut wait = false;
    let (method, path, body): (&str, String, Option<Value>) = match cmd.as_str() {
        "machine" => ("GET", "/machine".into(), None),
        "servers" => match args.positional() {
            Some(id) => ("GET", format!("/servers/{}", seg(&id)), None),
            None => ("GET", "/servers".into(), None),
        },
        "allocations" => match args.positional() {
            Some(id) => ("GET", format!("/allocations/{}", seg(&id)), None),
            None => ("GET", "/allocations".into(), None),
        },
        "allocate" => {
            let id = args
                .option("--id")?
                .ok_or("allocate needs --id ALLOCATION_ID")?;
            let mut body = json!({ "allocation_id": id });
            if let Some(bc) = args.option("--build-config")? {
                body["build_config"] = json!(bc);
            }
            if let Some(s) = args.option("--server")? {
                let n: u64 = s
                    .parse()
                    .map_err(|_| format!("--server must be a server id, not {s:?}"))?;
                body["server_id"] = json!(n);
            }
            if let Some(p) = args.option("--payload")? {
                body["payload"] = json!(p);
            }
            if let Some(f) = args.option("--payload-file")? {
                let p = std::fs::read_to_string(&f).map_err(|e| format!("cannot read {f}: {e}"))?;
                body["payload"] = json!(p);
            }
            ("POST", "/allocations".into(), Some(body))
        }
        "deallocate" => {
            let id = args
                .positional()
                .ok_or("deallocate needs an ALLOCATION_ID")?;
            ("DELETE", format!("/allocations/{}", seg(&id)), None)
        }
        "reserve" => {
            let ms = parse_ms("--for-ms", args.option("--for-ms")?)?;
            let mut body = json!({ "duration_ms": ms });
            if let Some(s) = args.option("--server")? {
                let n: u64 = s
                    .parse()
                    .map_err(|_| format!("--server must be a server id, not {s:?}"))?;
                body["server_id"] = json!(n);
            }
            ("POST", "/reservations".into(), Some(body))
        }
        "unreserve" => {
            let id = args.positional().ok_or("unreserve needs a SERVER_ID")?;
            ("DELETE", format!("/reservations/{}", seg(&id)), None)
        }
        "hold" => {
            let ms = parse_ms("--for-ms", args.option("--for-ms")?)?;
            let id = args.positional().ok_or("hold needs a SERVER_ID")?;
            (
                "POST",
                format!("/servers/{}/hold", seg(&id)),
                Some(json!({ "duration_ms": ms })),
            )
        }
        "start" | "stop" => {
            let id = args
                .positional()
                .ok_or_else(|| format!("{cmd} needs a SERVER_ID"))?;
            ("POST", format!("/servers/{}/{cmd}", seg(&id)), None)
        }
        "build-config" => match args.positional() {
            Some(name) => ("PUT", "/build-config".into(), Some(json!({ "name": name }))),
            None => ("GET", "/build-config".into(), None),
        },
        "events" => ("GET", "/events".into(), None),
        "upgrade" => {
            let name = match (args.option("--build")?, args.option("--build-config")?) {
                (Some(n), None) | (None, Some(n)) => n,
                (Some(_), Some(_)) => return Err("give --build or --build-config, not both".into()),
                (None, None) => return Err("upgrade needs --build NAME".into()),
            };
            let mut body = json!({ "build_config": name });
            for (opt, key) in [
                ("--max-draining", "max_draining"),
                ("--max-surge", "max_surge"),
                ("--drain-timeout-ms", "drain_timeout_ms"),
                ("--ready-timeout-ms", "ready_timeout_ms"),
            ] {
                if let Some(v) = args.option(opt)? {
                    let n: u64 = v
                        .parse()
                        .map_err(|_| format!("{opt} must be a whole number, not {v:?}"))?;
                    body[key] = json!(n);
                }
            }
            if let Some(pos) = args.rest.iter().position(|a| a == "--wait") {
                args.rest.remove(pos);
                wait = true;
            }
            ("POST", "/upgrade".into(), Some(body))
        }
        "upgrade-status" => ("GET", "/upgrade".into(), None),
        "shutdown" => ("POST", "/shutdown".into(), None),
        other => return Err(format!("unknown command {other:?}\n\n{USAGE}")),
    };
    args.finish()?;
    let token = token.or_else(|| api::token_for(addr));
    let (code, reply) =
        api::request_with_token(addr, token.as_deref(), method, &path, body.as_ref())
            .map_err(|e| e.to_string())?;
    let pretty = serde_json::to_string_pretty(&reply).unwrap_or_default();
    if (200..300).contains(&code) && wait {
        follow_upgrade(addr, token.as_deref(), reply)
    } else if (200..300).contains(&code) {
        println!("{pretty}");
        Ok(ExitCode::SUCCESS)
    } else {
        let msg = reply
            .get("error")
            .and_then(Value::as_str)
            .map(str::to_owned)
            .unwrap_or(pretty);
        eprintln!("error ({code}): {msg}");
        Ok(ExitCode::from(1))
    }
}

/// `upgrade --wait`: prints the roll's progress (to stderr) until it ends,
/// then its status; exit code 1 when it failed.
fn follow_upgrade(
    addr: SocketAddr,
    token: Option<&str>,
    mut status: Value,
) -> Result<ExitCode, String> {
    let line = |v: &Value| {
        let c = &v["counts"];
        format!(
            "upgrade {} to {}: {} ({} of {} old servers done, {} new joined, {} draining, {} failed)",
            v["id"], v["to"].as_str().unwrap_or("?"), v["phase"].as_str().unwrap_or("?"),
            c["done"], c["total"], c["joined"], c["draining"], c["failed"]
        )
    };
    let mut last = String::new();
    loop {
        let now = line(&status);
        if now != last {
            eprintln!("{now}");
            last = now;
        }
        match status["phase"].as_str() {
            Some("done") | Some("failed") => break,
            _ => {}
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
        let (code, v) = api::request_with_token(addr, token, "GET", "/upgrade", None)
            .map_err(|e| e.to_string())?;
        if code != 200 {
            return Err(format!("GET /upgrade answered {code}: {v}"));
        }
        status = v;
    }
    println!(
        "{}",
        serde_json::to_string_pretty(&status).unwrap_or_default()
    );
    Ok(if status["phase"] == "done" {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

fn api_address(api: Option<String>, config: Option<String>) -> Result<SocketAddr, String> {
    if let Some(a) = api {
        return a
            .parse()
            .map_err(|_| format!("--api {a:?} is not an address like 127.0.0.1:7800"));
    }
    if let Some(path) = config {
        let cfg = Config::load(&path).map_err(|e| e.to_string())?;
        let listen = cfg.control.listen;
        if listen.port() != 0 {
            return Ok(listen);
        }
        let file = cfg.work_dir().join(netz_host::host::API_ADDR_FILE);
        let text = std::fs::read_to_string(&file).map_err(|e| {
            format!(
                "cannot read {}: {e} (is the supervisor running?)",
                file.display()
            )
        })?;
        return text
            .trim()
            .parse()
            .map_err(|_| format!("bad address in {}", file.display()));
    }
    let a = std::env::var("NETZ_HOST_API").unwrap_or_else(|_| DEFAULT_LISTEN.to_owned());
    a.parse()
        .map_err(|_| format!("NETZ_HOST_API {a:?} is not an address"))
}

/// The token from `--token-file`, `$NETZ_HOST_TOKEN_FILE` or the work
/// folder of `--config`; `None` leaves the look-up by address.
fn api_token(file: Option<String>, config: Option<&str>) -> Option<String> {
    let file = file.or_else(|| std::env::var("NETZ_HOST_TOKEN_FILE").ok());
    if let Some(f) = file {
        return api::read_token(std::path::Path::new(&f));
    }
    let cfg = Config::load(config?).ok()?;
    api::read_token(&cfg.work_dir().join(netz_host::host::API_TOKEN_FILE))
}

fn wrap(argv: &[String]) -> Result<ExitCode, String> {
    let sep = argv
        .iter()
        .position(|a| a == "--")
        .ok_or("wrap needs -- PROGRAM [ARGS...]")?;
    let mut opts = Args {
        rest: argv[..sep].to_vec(),
    };
    let prefix = opts
        .option("--ready-line")?
        .unwrap_or_else(|| "ready".into());
    opts.finish()?;
    let (program, args) = argv[sep + 1..]
        .split_first()
        .ok_or("wrap needs a PROGRAM after --")?;
    let code = netz_host::wrap::main(program, args, &prefix);
    Ok(ExitCode::from(code.clamp(0, 255) as u8))
}

fn run(cfg: Config) -> Result<ExitCode, String> {
    use tracing_subscriber::EnvFilter;
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .try_init();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the runtime: {e}"))?;
    rt.block_on(netz_host::run(cfg))
        .map_err(|e| e.to_string())?;
    Ok(ExitCode::SUCCESS)
}

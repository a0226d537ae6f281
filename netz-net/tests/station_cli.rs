//! `netz-station`'s command line: `--help`, and a session with security on
//! (`--token-key new` on the creator, which issues tokens; `--connect-token`
//! on the joiners).

mod common;

use common::Proc;
use std::process::Command;

#[test]
fn help_prints_usage_and_exits_0() {
    let out = Command::new(env!("CARGO_BIN_EXE_netz-station"))
        .arg("--help")
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.starts_with("usage: netz-station"), "{text}");
    for option in [
        "--token-key",
        "--connect-token",
        "--protocol-id",
        "--create",
    ] {
        assert!(text.contains(option), "{option} missing from:\n{text}");
    }
    // A bad option still fails, and points at --help.
    let out = Command::new(env!("CARGO_BIN_EXE_netz-station"))
        .arg("--frobnicate")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stdout).contains("see --help"));
}

#[test]
fn a_secure_session_admits_token_holders_only() {
    let mut server = Proc::start(
        "server",
        &[
            "--create",
            "--type",
            "server",
            "--token-key",
            "new",
            "--protocol-id",
            "77",
        ],
    );
    assert!(server
        .log
        .iter()
        .any(|l| l.starts_with("token-key key=netz-key:")));
    server.send("issue client 5 60");
    let line = server.expect(|l| l.starts_with("token ") || l.starts_with("err"));
    let token = line.strip_prefix("token value=").expect(&line).to_string();
    let addr = server.addr.clone();
    let alice = Proc::start(
        "alice",
        &[
            "--join",
            &addr,
            "--connect-token",
            &token,
            "--protocol-id",
            "77",
        ],
    );
    assert_eq!(alice.id, 2);
    // No token, and a token for another protocol id: refused.
    for (name, extra) in [
        ("nobody", vec![]),
        (
            "other-game",
            vec!["--connect-token", token.as_str(), "--protocol-id", "78"],
        ),
    ] {
        let mut args = vec!["--join", addr.as_str(), "--join-ms", "500"];
        args.extend(extra);
        let mut p = Proc::spawn(name, &args);
        let line = p.expect(|l| l.starts_with("error") || l.starts_with("joined"));
        assert!(line.starts_with("error join failed"), "{name}: {line}");
    }
    // A garbled token is refused before any join.
    let mut p = Proc::spawn(
        "garbled",
        &["--join", &addr, "--connect-token", "netz-token-1:zz"],
    );
    let line = p.expect(|l| l.starts_with("error"));
    assert!(line.contains("--connect-token"), "{line}");
    assert_eq!(server.status().stations, vec![1, 2]);
}

//! Config validation: bad files get errors that name the offending key.

use netz_host::config::Config;
use std::process::Command;

const GOOD: &str = r#"
[fleet]
id = "f"
build_config = "main"
[machine]
cpu_cores = 4
memory_mb = 4096
[usage]
cpu_cores = 1
memory_mb = 1024
[[builds]]
name = "b"
executable = "/bin/true"
[[build_configs]]
name = "main"
build = "b"
query_type = "sqp"
port_range = [9000, 9009]
query_port_range = [9100, 9109]
"#;

fn err_of(text: &str) -> String {
    Config::parse(text)
        .expect_err("config should be rejected")
        .to_string()
}

#[test]
fn density_calculation_gives_slot_count() {
    let c = Config::parse(GOOD).unwrap();
    assert_eq!(c.slot_count(), 4);
    let c = Config::parse(&GOOD.replace("memory_mb = 4096", "memory_mb = 2500")).unwrap();
    assert_eq!(c.slot_count(), 2, "memory bound");
    let c = Config::parse(&GOOD.replace("cpu_cores = 4", "cpu_cores = 1.5")).unwrap();
    assert_eq!(c.slot_count(), 1, "cpu bound");
    let c = Config::parse(&GOOD.replace("memory_mb = 1024", "memory_mb = 1024\nmax_servers = 3"))
        .unwrap();
    assert_eq!(c.slot_count(), 3, "capped");
}

#[test]
fn unknown_build_config_is_named() {
    let e = err_of(&GOOD.replace("build_config = \"main\"", "build_config = \"nope\""));
    assert!(
        e.contains("fleet.build_config") && e.contains("nope"),
        "{e}"
    );
    let e = err_of(&GOOD.replace("build = \"b\"", "build = \"missing\""));
    assert!(
        e.contains("build_configs[0].build") && e.contains("missing"),
        "{e}"
    );
}

#[test]
fn port_range_too_small_is_named() {
    let e = err_of(&GOOD.replace("[9000, 9009]", "[9000, 9002]"));
    assert!(
        e.contains("build_configs[0].port_range") && e.contains("too small"),
        "{e}"
    );
    let e = err_of(&GOOD.replace("[9100, 9109]", "[9002, 9020]"));
    assert!(
        e.contains("query_port_range") && e.contains("overlaps"),
        "{e}"
    );
    let e = err_of(&GOOD.replace("query_port_range = [9100, 9109]\n", ""));
    assert!(e.contains("build_configs[0].query_port_range"), "{e}");
}

#[test]
fn zero_resources_are_named() {
    let e = err_of(&GOOD.replace("memory_mb = 4096", "memory_mb = 0"));
    assert!(e.contains("machine.memory_mb"), "{e}");
    let e = err_of(&GOOD.replace("cpu_cores = 1\n", "cpu_cores = 0\n"));
    assert!(e.contains("usage.cpu_cores"), "{e}");
    let e = err_of(&GOOD.replace("memory_mb = 1024", "memory_mb = 8192"));
    assert!(e.contains("`usage`") && e.contains("cannot fit"), "{e}");
}

#[test]
fn unknown_keys_and_bad_values_are_rejected() {
    let e = err_of(&GOOD.replace("[machine]", "[machine]\ncores = 3"));
    assert!(e.contains("cores"), "{e}");
    let e = err_of(&GOOD.replace("query_type = \"sqp\"", "query_type = \"gamespy\""));
    assert!(e.contains("build_configs[0].query_type"), "{e}");
    let e = err_of(&format!("{GOOD}\n[control]\nlisten = \"0.0.0.0:7800\"\n"));
    assert!(
        e.contains("control.listen") && e.contains("loopback"),
        "{e}"
    );
    let e = err_of(&GOOD.replace(
        "[[build_configs]]",
        "[health]\nfailure_threshold = 0\n[[build_configs]]",
    ));
    assert!(e.contains("health.failure_threshold"), "{e}");
    let e = err_of(&GOOD.replace("/bin/true", "/no/such/server"));
    assert!(
        e.contains("builds[0].executable") && e.contains("/no/such/server"),
        "{e}"
    );
    let e = err_of("this is not toml");
    assert!(e.contains("invalid config"), "{e}");
}

#[test]
fn binary_reports_bad_config_files() {
    let dir = std::env::temp_dir().join(format!("netz-host-config-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let bad = dir.join("bad.toml");
    std::fs::write(&bad, GOOD.replace("[9000, 9009]", "[9000, 9001]")).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_netz-host"))
        .args(["check", "--config"])
        .arg(&bad)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("build_configs[0].port_range"), "{stderr}");
    let out = Command::new(env!("CARGO_BIN_EXE_netz-host"))
        .args(["check", "--config"])
        .arg(dir.join("missing.toml"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot read config file"));
    let good = dir.join("good.toml");
    std::fs::write(&good, GOOD).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_netz-host"))
        .args(["check", "--config"])
        .arg(&good)
        .output()
        .unwrap();
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("4 server slots"));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn join_args_and_drain_ms_are_checked() {
    let with = |extra: &str| {
        GOOD.replace(
            "port_range = [9000, 9009]",
            &format!("port_range = [9000, 9009]\n{extra}"),
        )
    };
    let c = Config::parse(&with(
        "join_args = [\"--join\", \"{join}\"]\ndrain_ms = 5000\nargs = [\"--drain-ms\", \"{drain_ms}\"]",
    ))
    .unwrap();
    let bc = c.build_config("main").unwrap();
    assert_eq!(bc.join_args, ["--join", "{join}"]);
    assert_eq!(bc.drain_ms, Some(5000));
    let e = err_of(&with("join_args = [\"--join\"]"));
    assert!(
        e.contains("build_configs[0].join_args") && e.contains("{join}"),
        "{e}"
    );
    let e = err_of(&with("drain_ms = 0"));
    assert!(e.contains("build_configs[0].drain_ms"), "{e}");
    let e = err_of(&with("args = [\"--drain-ms\", \"{drain_ms}\"]"));
    assert!(
        e.contains("build_configs[0].drain_ms") && e.contains("{drain_ms}"),
        "{e}"
    );
}

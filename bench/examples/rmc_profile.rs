//! netz's sequential RMC against a tokio UDP ping-pong on one runtime, for
//! profiling the driver: `cargo run --release --example rmc_profile --
//! [--multi] [ROUNDS] [CALLS]`.

fn main() {
    let mut args = std::env::args().skip(1).peekable();
    let multi = args.peek().is_some_and(|a| a == "--multi");
    if multi {
        args.next();
    }
    let rounds = args.next().and_then(|v| v.parse().ok()).unwrap_or(10);
    let calls = args.next().and_then(|v| v.parse().ok()).unwrap_or(20_000);
    let (netz, tokio, datagrams) = netz_bench::floors::netz_and_tokio(multi, rounds, calls);
    let ratios: Vec<f64> = netz.iter().zip(&tokio).map(|(n, t)| n / t).collect();
    let s = netz_bench::stats::Summary::of;
    println!(
        "{}: netz {:.2} µs, tokio {:.2} µs, netz / tokio {:.2} ({:.2}–{:.2}), {datagrams:.2} datagrams per call",
        if multi { "multi-thread" } else { "current-thread" },
        s(&netz).median,
        s(&tokio).median,
        s(&ratios).median,
        s(&ratios).min,
        s(&ratios).max
    );
}

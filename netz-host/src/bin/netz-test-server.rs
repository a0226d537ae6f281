//! A game server for tests: see [`netz_host::test_server`].

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    std::process::exit(netz_host::test_server::main(&args));
}

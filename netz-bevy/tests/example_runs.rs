//! Runs the `bevy_arena` example once (in process) and checks what each
//! app printed.
#![allow(missing_docs)]

#[allow(dead_code)]
#[path = "../examples/bevy_arena.rs"]
mod bevy_arena;

fn has(lines: &[String], needle: &str) -> bool {
    lines.iter().any(|l| l.contains(needle))
}

#[test]
fn bevy_arena() {
    let lines = bevy_arena::run();
    let check = |needle: &str| assert!(has(&lines, needle), "no `{needle}` in {lines:#?}");
    // Every app sees every object, with the right role.
    for who in ["server", "ann", "bob"] {
        check(&format!("[{who}] discovered the scoreboard as"));
        check(&format!("[{who}] the scoreboard shows Some(10)"));
    }
    check("[server] discovered the scoreboard as Master");
    check("[ann] discovered ann's avatar as Master");
    check("[ann] discovered bob's avatar as Duplica");
    check("[bob] discovered bob's shot as Master");
    // Both RMCs returned a total: one 5, the other 10.
    let totals: Vec<&String> = lines
        .iter()
        .filter(|l| l.contains("add_points -> Success"))
        .collect();
    assert_eq!(totals.len(), 2, "{lines:#?}");
    check("add_points -> Success Some(5)");
    check("add_points -> Success Some(10)");
    // Bob is killed: his avatar is recovered by the server, his shot removed.
    check("[server] station S3 failed");
    check("[server] removed bob's shot (entity despawned)");
    check("[ann] removed bob's shot (entity despawned)");
    check("[server] bob's avatar is now mastered by station S1 (Master here)");
    check("[ann] bob's avatar is now mastered by station S1 (Duplica here)");
    check("[server] at the end: bob's avatar Master (master S1)");
    check("[ann] at the end: bob's avatar Duplica (master S1)");
    assert!(!has(&lines, "at the end: bob's shot"), "{lines:#?}");
    // The avatars moved: the positions ann saw of bob's avatar grew.
    let xs: Vec<f32> = lines
        .iter()
        .filter(|l| l.starts_with("[ann] frame"))
        .filter_map(|l| l.split("bob's avatar@").nth(1))
        .filter_map(|rest| rest.split_whitespace().next()?.parse().ok())
        .collect();
    assert!(
        xs.len() >= 2 && xs.windows(2).all(|w| w[1] > w[0]),
        "{xs:?} in {lines:#?}"
    );
}

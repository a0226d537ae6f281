//! Runs every example once (in process) and checks the documented behaviour
//! in what it prints.
#![allow(missing_docs)]

#[allow(dead_code)]
#[path = "../examples/avatar_guard.rs"]
mod avatar_guard;
#[allow(dead_code)]
#[path = "../examples/budget.rs"]
mod budget;
#[allow(dead_code)]
#[path = "../examples/car_dealer.rs"]
mod car_dealer;
#[allow(dead_code)]
#[path = "../examples/factorial.rs"]
mod factorial;
#[allow(dead_code)]
#[path = "../examples/hello_net.rs"]
mod hello_net;
#[allow(dead_code)]
#[path = "../examples/interest.rs"]
mod interest;
#[allow(dead_code)]
#[path = "../examples/join_approval.rs"]
mod join_approval;
#[allow(dead_code)]
#[path = "../examples/schema_versions.rs"]
mod schema_versions;
#[allow(dead_code)]
#[path = "../examples/server_migration.rs"]
mod server_migration;
#[allow(dead_code)]
#[path = "../examples/weather.rs"]
mod weather;

fn has(lines: &[String], needle: &str) -> bool {
    lines.iter().any(|l| l.contains(needle))
}

fn count(lines: &[String], needle: &str) -> usize {
    lines.iter().filter(|l| l.contains(needle)).count()
}

#[test]
fn hello_net() {
    let lines = hello_net::run();
    assert!(has(&lines, "alice joined as S"), "{lines:#?}");
    assert!(has(&lines, "bob joined as S"), "{lines:#?}");
    assert!(
        has(&lines, "alice shoots: hit=true points=10"),
        "{lines:#?}"
    );
    assert!(
        has(&lines, "bob's duplica shows points=10: true"),
        "{lines:#?}"
    );
    assert_eq!(lines.last().map(String::as_str), Some("done"), "{lines:#?}");
}

#[test]
fn car_dealer() {
    let lines = car_dealer::run();
    assert!(
        has(&lines, "supplier: UpdateList sent=true outcome=Success"),
        "{lines:#?}"
    );
    assert!(
        has(&lines, "buyer: the dealer's duplica lists 4 cars"),
        "{lines:#?}"
    );
    assert!(
        has(&lines, "BestMatch(BMW, M5, 2001, 44000) sent=true: DO("),
        "{lines:#?}"
    );
    assert!(has(&lines, "year 2001 price 45000"), "{lines:#?}");
    assert!(
        has(&lines, "ListMatches(BMW, M5, 2001): 2 cars"),
        "{lines:#?}"
    );
    assert_eq!(count(&lines, "Found vehicle"), 2, "{lines:#?}");
    assert!(
        has(
            &lines,
            "TargetObjectMustBeMaster: sent=true outcome=TargetValidationFailure"
        ),
        "{lines:#?}"
    );
    assert!(has(&lines, "local BestMatch(VW, GOLF): DO("), "{lines:#?}");
}

#[test]
fn weather() {
    let lines = weather::run();
    assert!(
        has(&lines, "frame 1: S1 (master) turns the fog on"),
        "{lines:#?}"
    );
    assert!(
        has(&lines, "frame 2: S1 (master) turns the fog off"),
        "{lines:#?}"
    );
    // _OnDuplicas: two duplicas per frame; _OnMaster: master and both duplicas.
    assert_eq!(
        count(&lines, "UpdateWeather -> fog"),
        2 + 2 + 3,
        "{lines:#?}"
    );
    assert!(
        has(&lines, "S1 (master): scene fog on, 1 updates"),
        "{lines:#?}"
    );
    assert!(
        has(&lines, "S2 (duplica): scene fog on, 3 updates"),
        "{lines:#?}"
    );
    assert!(
        has(&lines, "S3 (duplica): scene fog on, 3 updates"),
        "{lines:#?}"
    );
    assert!(
        has(&lines, "UpdateWeather_OnDuplicas: sent=false"),
        "{lines:#?}"
    );
}

#[test]
fn avatar_guard() {
    let lines = avatar_guard::run();
    assert!(
        has(&lines, "S3 (Client): avatar duplica no, arena yes"),
        "{lines:#?}"
    );
    assert!(
        has(&lines, "S2 (Server): avatar duplica yes, arena yes"),
        "{lines:#?}"
    );
    assert!(
        has(&lines, "performed an invalid ChangeDupSetOperation"),
        "{lines:#?}"
    );
    assert!(
        has(&lines, "S3 performed an invalid CallMethodOperation"),
        "{lines:#?}"
    );
    assert!(
        has(&lines, "** An invalid operation has been performed **"),
        "{lines:#?}"
    );
    assert!(
        has(
            &lines,
            "S3 calls SpecialRMC: sent=true outcome=RejectedBySafetyExecutive"
        ),
        "{lines:#?}"
    );
    assert!(
        has(
            &lines,
            "S2 calls SpecialRMC: sent=true outcome=Success special RMC run for S2"
        ),
        "{lines:#?}"
    );
    assert!(has(&lines, "has migrated"), "{lines:#?}");
    assert!(has(&lines, "avatar master is now S2"), "{lines:#?}");
    let traces: Vec<_> = lines.iter().filter(|l| l.starts_with("trace: ")).collect();
    assert!(!traces.is_empty(), "{lines:#?}");
    assert!(traces.iter().all(|l| l.contains("Avatar")), "{traces:#?}");
    assert!(has(&lines, "ChangeMasterStationOperation"), "{lines:#?}");
}

#[test]
fn factorial() {
    let (lines, result) = factorial::run();
    assert_eq!(result, Some(3_628_800));
    assert!(
        has(&lines, "factorial(0) = 1 (attempt count 1)"),
        "{lines:#?}"
    );
    assert!(has(&lines, "result of factorial(9) = 362880"), "{lines:#?}");
    assert!(
        has(&lines, "Factorial(10) = 3628800 (Success)"),
        "{lines:#?}"
    );
    // The calls were postponed and retried.
    assert!(has(&lines, "(attempt 2)"), "{lines:#?}");
    // Both stations worked.
    assert!(has(&lines, "S1: testing") && has(&lines, "S2: testing"));
}

#[test]
fn join_approval() {
    let lines = join_approval::run();
    assert!(
        has(
            &lines,
            "player 2 (Client, token \"CorrectPassword\"): approved"
        ),
        "{lines:#?}"
    );
    assert!(
        has(
            &lines,
            "player 3 (Client, token \"WrongPassword\"): refused"
        ),
        "{lines:#?}"
    );
    assert!(
        has(
            &lines,
            "player 4 (Client, token \"CorrectPassword\"): approved"
        ),
        "{lines:#?}"
    );
    assert!(
        has(
            &lines,
            "player 5 (Client, token \"CorrectPassword\"): refused"
        ),
        "{lines:#?}"
    );
    assert!(
        has(&lines, "monitor (Tool, token \"\"): approved"),
        "{lines:#?}"
    );
    assert!(
        has(&lines, "debugger (Tool, token \"\"): approved"),
        "{lines:#?}"
    );
    assert!(has(&lines, "session: 6 stations, 4 players"), "{lines:#?}");
}

/// The decisions of a join approval run: who, and approved or refused.
fn decisions(lines: &[String]) -> Vec<(String, bool)> {
    lines
        .iter()
        .filter_map(|l| {
            let (who, rest) = l.split_once("): ")?;
            Some((who.to_string(), rest.starts_with("approved")))
        })
        .collect()
}

#[test]
fn join_approval_over_the_network() {
    let sim = join_approval::run();
    let net = join_approval::run_net();
    assert_eq!(decisions(&net).len(), 7, "{net:#?}");
    assert_eq!(decisions(&net), decisions(&sim), "{net:#?}\n{sim:#?}");
    assert!(has(&net, "session: 6 stations, 4 players"), "{net:#?}");
}

#[test]
fn schema_versions() {
    let (lines, seen) = schema_versions::run();
    assert!(
        has(&lines, "new build class ids: A=100 X=102 C=101"),
        "{lines:#?}"
    );
    assert!(
        has(
            &lines,
            "data revision: 0 x: 0 valid: true a: 1 valid: false"
        ),
        "{lines:#?}"
    );
    assert!(
        has(&lines, "data revision: 1 x: 0 valid: true a: 1 valid: true"),
        "{lines:#?}"
    );
    assert!(has(&lines, "ErrorRMCDispatchFailed"), "{lines:#?}");
    assert_eq!(seen.get_x_on_old, Some(1.5));
}

#[test]
fn server_migration() {
    let lines = server_migration::run();
    let story: Vec<&str> = lines
        .iter()
        .filter_map(|l| l.strip_prefix("client 1111: "))
        .collect();
    // The callbacks in the documented order (MIG-1..3).
    let pos = |needle: &str| {
        story
            .iter()
            .position(|l| l.starts_with(needle))
            .unwrap_or_else(|| panic!("no `{needle}` in {lines:#?}"))
    };
    let order = [
        pos("Connected to server S1 reconnect=false"),
        pos("created room room-1-1 (its owner)"),
        pos("OnOffline is called"),
        pos("Disconnected from server reconnect=true"),
        story
            .iter()
            .position(|l| l.starts_with("Connected to server S") && l.ends_with("reconnect=true"))
            .unwrap_or_else(|| panic!("no reconnect in {lines:#?}")),
        pos("the migration is completed"),
        pos("done"),
    ];
    assert!(order.windows(2).all(|w| w[0] < w[1]), "{lines:#?}");
    let start = pos("The room migration is started...");
    let complete = pos("The room migration is completed... success=true, RoomID=room-");
    assert!(order[2] < start && start < complete, "{lines:#?}");
    // A normal disconnect can only be the final one, when the client leaves.
    if let Some(last) = story
        .iter()
        .position(|l| *l == "Disconnected from server reconnect=false")
    {
        assert!(last > complete && last > order[5], "{lines:#?}");
    }
    assert!(
        story
            .iter()
            .any(|l| l.contains("owner S4 (me); members [4]; properties [(\"map\", \"harbour\")]")),
        "{lines:#?}"
    );
    assert!(has(&lines, "server 1: left the cluster"), "{lines:#?}");
}

#[test]
fn interest() {
    let lines = interest::run();
    assert!(has(&lines, "the server holds 410 objects"), "{lines:#?}");
    // At the start each player sees only its own corner, and no other player.
    assert!(
        has(&lines, "step 0: S2: ")
            && lines
                .iter()
                .any(|l| l.starts_with("step 0") && l.contains("1 players")),
        "{lines:#?}"
    );
    // At the end the four met in the middle: each sees all four players.
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("step 9") && l.matches("4 players").count() == 4),
        "{lines:#?}"
    );
    let most: usize = lines
        .iter()
        .find_map(|l| l.strip_prefix("the most props any client held: "))
        .and_then(|l| l.split(' ').next())
        .and_then(|n| n.parse().ok())
        .expect("count");
    assert!(most > 0 && most < 40, "{lines:#?}");
    assert_eq!(lines.last().map(String::as_str), Some("done"), "{lines:#?}");
}

#[test]
fn budget() {
    let lines = budget::run();
    assert_eq!(count(&lines, "budget 6000 B/s"), 3, "{lines:#?}");
    assert!(
        has(&lines, "every link within its budget: true"),
        "{lines:#?}"
    );
    assert!(has(&lines, "flagships fresher: true"), "{lines:#?}");
    assert!(
        has(&lines, "every client holds its last state: true"),
        "{lines:#?}"
    );
    assert_eq!(lines.last().map(String::as_str), Some("done"), "{lines:#?}");
}

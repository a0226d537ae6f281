//! Runs every example once (in process) and checks the documented behaviour
//! in what it prints.
#![allow(missing_docs)]

#[allow(dead_code)]
#[path = "../examples/avatar_guard.rs"]
mod avatar_guard;
#[allow(dead_code)]
#[path = "../examples/car_dealer.rs"]
mod car_dealer;
#[allow(dead_code)]
#[path = "../examples/factorial.rs"]
mod factorial;
#[allow(dead_code)]
#[path = "../examples/join_approval.rs"]
mod join_approval;
#[allow(dead_code)]
#[path = "../examples/schema_versions.rs"]
mod schema_versions;
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

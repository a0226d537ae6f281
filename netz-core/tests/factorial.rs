//! The Factorial example of 14.3.3: nested RMCs between two stations that
//! postpone themselves instead of blocking, and never deadlock.
use netz_core::cluster::Cluster;
use netz_core::sim::SimConfig;
use netz_core::*;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Every (value, attempt) seen, to check the documented attempt counts.
static ATTEMPTS: Mutex<Vec<(i32, u32)>> = Mutex::new(Vec::new());

struct FactorialContext {
    result: RmcContext<i32>,
}

#[derive(Default)]
struct GameObject;

const FACTORIAL: MethodId = MethodId(0);

impl GameObject {
    fn factorial(call: &mut CallContext<'_>, value: i32, s1: StationId, s2: StationId) -> i32 {
        let attempt = call.operation().attempt_count();
        ATTEMPTS.lock().unwrap().push((value, attempt));
        if value == 0 {
            assert_eq!(attempt, 1);
            return 1;
        }
        let context = if attempt == 1 {
            let ctx = Arc::new(FactorialContext {
                result: RmcContext::new(),
            });
            call.operation()
                .attach_user_context(UserContext::object(ctx.clone()));
            ctx.result.clear_flag(RmcFlag::SynchronousCall);
            // Select the worker station: the other one.
            let other = if call.local_station() == s1 { s2 } else { s1 };
            ctx.result.set_target_station(other);
            let h = call.handle();
            let sent =
                call.object::<GameObject>(h)
                    .call(&ctx.result, FACTORIAL, &(value - 1, s1, s2));
            assert!(sent);
            ctx
        } else {
            call.operation()
                .user_context()
                .and_then(|u| u.downcast::<FactorialContext>())
                .expect("context attached on the first attempt")
        };
        if context.result.wait(Duration::ZERO) {
            return value * context.result.result().expect("a result");
        }
        call.operation()
            .postpone_operation(Duration::from_millis(100));
        0
    }
}

impl DoClass for GameObject {
    const CLASS_NAME: &'static str = "GameObject";
    const METHODS: &'static [MethodInfo] = &[MethodInfo {
        name: "factorial",
        kind: MethodKind::Rmc,
    }];
    type Proxy<'a> = ObjectProxy<'a, Self>;
    fn new_duplica() -> Self {
        GameObject
    }
    fn dispatch(
        &mut self,
        call: &mut CallContext<'_>,
        method: MethodId,
        args: &[u8],
    ) -> Result<Vec<u8>, DispatchError> {
        match method {
            FACTORIAL => {
                let (v, s1, s2): (i32, StationId, StationId) =
                    postcard::from_bytes(args).map_err(|_| DispatchError::BadArguments)?;
                Ok(postcard::to_allocvec(&GameObject::factorial(call, v, s1, s2)).unwrap())
            }
            m => Err(DispatchError::UnknownMethod(m)),
        }
    }
}

#[test]
fn factorial_of_10_across_two_stations() {
    let mut r = Registry::new();
    r.register::<GameObject>().unwrap();
    let mut c = Cluster::start(
        SimConfig {
            latency: Duration::from_millis(10),
            ..SimConfig::seeded(10)
        },
        Arc::new(r),
        vec![
            StationConfig::new(ProcessType::Server, "a"),
            StationConfig::new(ProcessType::Server, "b"),
        ],
    )
    .unwrap();
    let now = c.now();
    let h = c.station_mut(0).publish(now, GameObject).unwrap().handle();
    c.run_for(Duration::from_millis(100));
    let (s1, s2) = (c.station(0).id(), c.station(1).id());
    let ctx: RmcContext<i32> = RmcContext::with_target(s1, false);
    assert!(c
        .station_mut(1)
        .object::<GameObject>(h)
        .call(&ctx, FACTORIAL, &(10i32, s1, s2)));
    assert!(c.wait(&ctx, Duration::from_secs(30)), "no deadlock");
    assert_eq!(ctx.outcome(), Outcome::Success);
    assert_eq!(ctx.result(), Some(3_628_800));
    let attempts = ATTEMPTS.lock().unwrap().clone();
    // Each level first runs once, then is postponed until its child returns.
    for v in 0..=10 {
        let firsts = attempts.iter().filter(|(x, a)| *x == v && *a == 1).count();
        assert_eq!(firsts, 1, "value {v} starts exactly once");
    }
    assert!(
        attempts.iter().all(|(v, a)| *v != 0 || *a == 1),
        "factorial(0) never waits"
    );
    let max_attempt = attempts
        .iter()
        .filter(|(v, _)| *v == 10)
        .map(|(_, a)| *a)
        .max()
        .unwrap();
    assert!(max_attempt > 1, "factorial(10) was postponed and retried");
}

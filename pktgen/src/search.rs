//! RFC 2544 section 26.1 throughput: the highest offered rate at which no frame is
//! lost, found by a binary search over trials of a set length.
//!
//! The search starts with one trial as fast as the generator can send. If nothing is
//! lost there, the gateway is faster than the generator and that rate is the answer
//! (marked as limited by the generator). Otherwise the rate the gateway forwarded under
//! that overload is the first guess, and the search halves the interval between the
//! highest rate that passed and the lowest that failed until it is narrower than the
//! resolution (a fraction of the upper bound).

/// What a trial at some rate told.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Outcome {
    /// Loss within the accepted ratio.
    pub passed: bool,
    /// The offered rate achieved (packets/s).
    pub offered_rate: f64,
    /// Packets/s received.
    pub received_rate: f64,
}

#[derive(Debug, Clone, Copy)]
pub struct Settings {
    /// Stop when `hi - lo <= resolution * hi`.
    pub resolution: f64,
    /// At most this many trials after the first (repeats not counted).
    pub max_trials: usize,
    /// A rate that lost is tried again up to this many times, and passes if any of
    /// those trials loses nothing: on shared CPUs one preemption of the gateway's
    /// worker loses packets at any rate. 0 is RFC 2544's single trial per rate.
    pub retries: usize,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Found {
    /// Highest rate that passed (packets/s); 0 if none did.
    pub rate: f64,
    /// The generator could not offer more than the gateway forwarded.
    pub generator_limited: bool,
    /// (rate asked, passed) of every trial, in order; the first asked for no limit
    /// (`f64::INFINITY`).
    pub steps: Vec<(f64, bool)>,
}

/// Runs the search with `trial(rate)`, where `rate` is `f64::INFINITY` for "as fast
/// as you can".
pub fn throughput<E>(
    settings: Settings,
    mut trial: impl FnMut(f64) -> Result<Outcome, E>,
) -> Result<Found, E> {
    let first = trial(f64::INFINITY)?;
    let mut steps = vec![(f64::INFINITY, first.passed)];
    if first.passed {
        return Ok(Found {
            rate: first.offered_rate,
            generator_limited: true,
            steps,
        });
    }
    let mut lo = 0.0f64;
    let mut hi = first.offered_rate;
    let mut rate = first.received_rate.clamp(hi * 0.01, hi * 0.99);
    for _ in 0..settings.max_trials {
        if hi - lo <= settings.resolution * hi || rate <= 0.0 {
            break;
        }
        let mut o = trial(rate)?;
        steps.push((rate, o.passed));
        for _ in 0..settings.retries {
            if o.passed {
                break;
            }
            o = trial(rate)?;
            steps.push((rate, o.passed));
        }
        if o.passed {
            lo = rate;
        } else {
            hi = rate;
        }
        rate = (lo + hi) / 2.0;
    }
    Ok(Found {
        rate: lo,
        generator_limited: false,
        steps,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A gateway that forwards everything up to `capacity` packets/s, behind a
    /// generator that can offer at most `generator`.
    fn dut(capacity: f64, generator: f64) -> impl FnMut(f64) -> Result<Outcome, ()> {
        move |rate: f64| {
            let offered = rate.min(generator);
            Ok(Outcome {
                passed: offered <= capacity,
                offered_rate: offered,
                received_rate: offered.min(capacity),
            })
        }
    }

    const S: Settings = Settings {
        resolution: 0.005,
        max_trials: 40,
        retries: 0,
    };

    #[test]
    fn finds_the_capacity_within_the_resolution() {
        for capacity in [1e5, 1.234e6, 2.9e6, 4.99e6] {
            let found = throughput(S, dut(capacity, 5e6)).unwrap();
            assert!(!found.generator_limited);
            assert!(found.rate <= capacity, "{found:?}");
            assert!(
                found.rate >= capacity * (1.0 - 2.0 * S.resolution),
                "{found:?}"
            );
            // Every rate that passed is at or below the capacity, every failure above.
            for &(rate, passed) in &found.steps[1..] {
                assert_eq!(passed, rate <= capacity, "{rate} {capacity}");
            }
        }
    }

    #[test]
    fn a_gateway_faster_than_the_generator_is_reported_as_such() {
        let found = throughput(S, dut(1e7, 5e6)).unwrap();
        assert!(found.generator_limited);
        assert_eq!(found.rate, 5e6);
        assert_eq!(found.steps.len(), 1);
    }

    #[test]
    fn a_gateway_that_loses_at_any_rate_gets_zero() {
        let found = throughput(S, |rate: f64| {
            Ok::<_, ()>(Outcome {
                passed: false,
                offered_rate: rate.min(1e6),
                received_rate: rate.min(1e6) * 0.5,
            })
        })
        .unwrap();
        assert_eq!(found.rate, 0.0);
        assert!(found.steps.len() <= S.max_trials + 1);
    }

    /// A gateway that loses in every other trial whatever the rate (a preemption) is
    /// not held to that with a retry, and is without.
    #[test]
    fn a_repeated_trial_forgives_a_one_off_loss() {
        let flaky = || {
            let mut n = 0;
            move |rate: f64| {
                n += 1;
                let offered = rate.min(5e6);
                Ok::<_, ()>(Outcome {
                    passed: offered <= 1e6 && n % 2 == 1,
                    offered_rate: offered,
                    received_rate: offered.min(1e6),
                })
            }
        };
        let with = throughput(Settings { retries: 1, ..S }, flaky()).unwrap();
        assert!(with.rate >= 1e6 * (1.0 - 2.0 * S.resolution), "{with:?}");
        // Every rate that passed is at or below the capacity.
        for &(rate, passed) in &with.steps[1..] {
            assert!(!passed || rate <= 1e6);
        }
        let without = throughput(S, flaky()).unwrap();
        assert!(without.rate < with.rate, "{without:?} {with:?}");
    }

    #[test]
    fn trial_errors_stop_the_search() {
        let r = throughput(S, |_| Err::<Outcome, _>("gone"));
        assert_eq!(r, Err("gone"));
    }
}

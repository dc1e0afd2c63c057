//! The rollout/rollback machine, driven with explicit instants: no sleeps, no sockets.

use std::time::{Duration, Instant, SystemTime};

use blueshift::config::{self, Route};
use blueshift::control::rollout::{Event, Machine, Phase};
use blueshift::judge::window::Summary;
use blueshift::judge::StateName;
use blueshift::judge::{limits::judge, Kind, Progress};

const S: Duration = Duration::from_secs(1);

fn policy(rollout: bool) -> Route {
    let mut text = String::from(
        "listen: 127.0.0.1:1\ncolors:\n  blue: {backends: [{addr: 127.0.0.1:2}]}\n  green: {backends: [{addr: 127.0.0.1:3}]}\nstable: blue\nsplit: {blue: 90, green: 10}\n",
    );
    if rollout {
        text.push_str("rollout:\n  candidate: green\n  steps:\n    - {weight: 10, hold: 30s}\n    - {weight: 50, hold: 30s}\n    - {weight: 100, hold: 30s}\n");
    }
    route(&text)
}

/// The one route of a policy without `routes:`.
fn route(text: &str) -> Route {
    config::parse(text).unwrap().routes.remove(0)
}

fn breach(color: &str) -> Event {
    Event::Breach {
        color: color.into(),
        kind: Kind::ErrorRate,
        reason: "error rate 0.50 > 0.05".into(),
    }
}

/// Time passes; no rollout step here waits for requests.
fn tick() -> Event {
    Event::Tick(Progress::default())
}

fn on(m: &mut Machine, p: &Route, e: Event, at: Instant) -> Result<(), String> {
    m.on(p, e, at, SystemTime::now())
}

#[test]
fn without_a_rollout_the_split_rules_and_the_state_is_steady() {
    let p = policy(false);
    let t0 = Instant::now();
    let mut m = Machine::new(&p, t0);
    assert_eq!(m.state(), StateName::Steady);
    assert_eq!(m.weights(&p), vec![90, 10]);
    on(&mut m, &p, tick(), t0 + 3600 * S).unwrap();
    assert_eq!(m.state(), StateName::Steady);
    assert!(on(&mut m, &p, Event::Pause, t0).is_err());
    assert!(on(&mut m, &p, Event::Promote, t0).is_err());
    assert!(on(&mut m, &p, Event::Resume, t0).is_err());
}

#[test]
fn a_rollout_walks_its_steps_to_promoted() {
    let p = policy(true);
    let t0 = Instant::now();
    let mut m = Machine::new(&p, t0);
    assert_eq!(
        (m.state(), m.weights(&p)),
        (StateName::Progressing, vec![90, 10])
    );
    assert_eq!(m.next_at(&p), Some(t0 + 30 * S));
    on(&mut m, &p, tick(), t0 + 29 * S).unwrap();
    assert_eq!(m.weights(&p), vec![90, 10], "the hold is not over yet");
    on(&mut m, &p, tick(), t0 + 30 * S).unwrap();
    assert_eq!(m.weights(&p), vec![50, 50]);
    on(&mut m, &p, tick(), t0 + 60 * S).unwrap();
    assert_eq!(m.weights(&p), vec![0, 100]);
    assert_eq!(
        m.state(),
        StateName::Progressing,
        "the last step has a hold too"
    );
    on(&mut m, &p, tick(), t0 + 90 * S).unwrap();
    assert_eq!(
        (m.state(), m.weights(&p)),
        (StateName::Promoted, vec![0, 100])
    );
    assert_eq!(m.next_at(&p), None);
}

#[test]
fn a_late_tick_catches_up_on_every_step_it_missed() {
    let p = policy(true);
    let t0 = Instant::now();
    let mut m = Machine::new(&p, t0);
    on(&mut m, &p, tick(), t0 + 65 * S).unwrap();
    assert_eq!(
        m.phase,
        Phase::Progressing {
            step: 2,
            since: t0 + 60 * S,
            from: Some(0),
        }
    );
}

#[test]
fn pause_holds_the_step_and_resume_keeps_the_remaining_hold() {
    let p = policy(true);
    let t0 = Instant::now();
    let mut m = Machine::new(&p, t0);
    on(&mut m, &p, Event::Pause, t0 + 10 * S).unwrap();
    assert_eq!(m.state(), StateName::Paused);
    assert!(
        on(&mut m, &p, Event::Pause, t0 + 11 * S).is_err(),
        "pausing twice does not apply"
    );
    on(&mut m, &p, tick(), t0 + 600 * S).unwrap();
    assert_eq!(
        m.weights(&p),
        vec![90, 10],
        "a paused rollout does not advance"
    );
    on(&mut m, &p, Event::Resume, t0 + 600 * S).unwrap();
    assert_eq!(m.state(), StateName::Progressing);
    assert_eq!(
        m.next_at(&p),
        Some(t0 + 620 * S),
        "20s of the 30s hold were left"
    );
}

#[test]
fn promote_jumps_to_100_and_cannot_repeat() {
    let p = policy(true);
    let t0 = Instant::now();
    let mut m = Machine::new(&p, t0);
    on(&mut m, &p, Event::Promote, t0 + S).unwrap();
    assert_eq!(
        (m.state(), m.weights(&p)),
        (StateName::Promoted, vec![0, 100])
    );
    assert!(on(&mut m, &p, Event::Promote, t0 + 2 * S).is_err());
}

#[test]
fn a_breach_rolls_back_stops_the_clock_and_does_not_flap() {
    let p = policy(true);
    let t0 = Instant::now();
    let mut m = Machine::new(&p, t0);
    on(&mut m, &p, tick(), t0 + 30 * S).unwrap();
    on(&mut m, &p, breach("green"), t0 + 31 * S).unwrap();
    assert_eq!(m.state(), StateName::RolledBack);
    assert_eq!(m.rolled_back["green"].kind, Kind::ErrorRate);
    assert_eq!(m.next_at(&p), None);
    for s in 32..1000 {
        on(&mut m, &p, tick(), t0 + s * S).unwrap();
    }
    assert_eq!(
        m.state(),
        StateName::RolledBack,
        "stays rolled back however long it waits"
    );
    assert_eq!(
        m.phase,
        Phase::Progressing {
            step: 1,
            since: t0 + 30 * S,
            from: Some(0),
        }
    );
    assert!(
        on(&mut m, &p, breach("green"), t0 + 1000 * S).is_err(),
        "already rolled back"
    );
    assert!(
        on(&mut m, &p, Event::Promote, t0 + 1000 * S).is_err(),
        "a rolled-back candidate is not promoted"
    );
}

#[test]
fn the_stable_color_is_never_rolled_back() {
    let p = policy(false);
    let mut m = Machine::new(&p, Instant::now());
    assert!(on(&mut m, &p, breach("blue"), Instant::now()).is_err());
    assert!(m.rolled_back.is_empty());
}

#[test]
fn resume_clears_a_rollback_and_restarts_the_step() {
    let p = policy(true);
    let t0 = Instant::now();
    let mut m = Machine::new(&p, t0);
    on(&mut m, &p, breach("green"), t0 + 5 * S).unwrap();
    on(&mut m, &p, Event::Resume, t0 + 100 * S).unwrap();
    assert_eq!(m.state(), StateName::Progressing);
    assert_eq!(m.next_at(&p), Some(t0 + 130 * S));
    assert!(
        on(&mut m, &p, Event::Resume, t0 + 101 * S).is_err(),
        "nothing left to resume"
    );
}

#[test]
fn manual_rollback_takes_every_weighted_candidate_out() {
    let p = policy(false);
    let t0 = Instant::now();
    let mut m = Machine::new(&p, t0);
    on(&mut m, &p, Event::Rollback, t0).unwrap();
    assert_eq!(m.rolled_back["green"].kind, Kind::Manual);
    assert!(
        on(&mut m, &p, Event::Rollback, t0).is_err(),
        "nothing left to roll back"
    );
}

#[test]
fn a_reload_keeps_rollbacks_unless_the_color_or_rollout_changed() {
    let p = policy(true);
    let t0 = Instant::now();
    let mut m = Machine::new(&p, t0);
    on(&mut m, &p, tick(), t0 + 30 * S).unwrap();
    on(&mut m, &p, breach("green"), t0 + 31 * S).unwrap();

    let mut same = p.clone();
    same.split = vec![80, 20];
    assert!(m.reconcile(&p, &same, t0 + 40 * S).is_empty());
    assert_eq!(
        m.phase,
        Phase::Progressing {
            step: 1,
            since: t0 + 30 * S,
            from: Some(0),
        },
        "an unrelated edit does not restart the rollout"
    );
    assert!(m.rolled_back.contains_key("green"));

    let mut moved = p.clone();
    moved.colors[1].backends[0].addr = "127.0.0.1:4".parse().unwrap();
    assert_eq!(
        m.reconcile(&p, &moved, t0 + 50 * S),
        vec!["green".to_string()]
    );
    assert_eq!(m.state(), StateName::Progressing);

    let mut new_steps = moved.clone();
    new_steps.rollout.as_mut().unwrap().steps[0].weight = 5;
    m.reconcile(&moved, &new_steps, t0 + 60 * S);
    assert_eq!(
        m.phase,
        Phase::Progressing {
            step: 0,
            since: t0 + 60 * S,
            from: None,
        },
        "a changed rollout starts at step 1"
    );
}

#[test]
fn the_judge_needs_min_requests_and_names_the_numbers() {
    let limits = policy(false).rollback;
    let s = |requests, errors, p99_ms| Summary {
        requests,
        errors,
        p99: Duration::from_millis(p99_ms),
        slow: 0,
        stuck: 0,
    };
    assert_eq!(
        judge(&limits, &s(19, 19, 9000)),
        None,
        "below min_requests nothing judges"
    );
    assert_eq!(
        judge(&limits, &s(100, 5, 100)),
        None,
        "exactly at the limit is fine"
    );
    let (kind, reason) = judge(&limits, &s(112, 35, 100)).unwrap();
    assert_eq!(kind, Kind::ErrorRate);
    assert_eq!(reason, "error rate 0.31 > 0.05 over 30s (112 requests)");
    let (kind, reason) = judge(&limits, &s(50, 0, 2400)).unwrap();
    assert_eq!(kind, Kind::Latency);
    assert_eq!(reason, "p99 latency 2s 400ms > 2s over 30s (50 requests)");
    // A hung model: few answers, and requests waiting past the limit.
    let hung = |requests, slow, stuck| Summary {
        requests,
        errors: 0,
        p99: Duration::from_millis(100),
        slow,
        stuck,
    };
    assert_eq!(judge(&limits, &hung(10, 0, 9)), None, "19 < min_requests");
    assert_eq!(
        judge(&limits, &hung(600, 0, 6)),
        None,
        "6 of 606 is under 1%"
    );
    let (kind, reason) = judge(&limits, &hung(600, 1, 6)).unwrap();
    assert_eq!(kind, Kind::Latency);
    assert_eq!(
        reason,
        "p99 latency > 2s over 30s: 6 requests waiting longer, 1 answered slower (606 requests)"
    );
    let (kind, _) = judge(&limits, &hung(0, 0, 20)).unwrap();
    assert_eq!(kind, Kind::Latency, "no answer at all, 20 waiting");
}

fn shadow_policy() -> Route {
    route(
        "listen: 127.0.0.1:1\ncolors:\n  blue: {backends: [{addr: 127.0.0.1:2}]}\n  green: {backends: [{addr: 127.0.0.1:3}]}\nstable: blue\nsplit: {blue: 100, green: 0}\nrollout:\n  candidate: green\n  steps:\n    - {shadow: 50, hold: 10s, min_requests: 100}\n    - {weight: 10, hold: 10s, min_requests: 20}\n    - {weight: 100, hold: 10s}\n",
    )
}

fn progress(requests: u64, compared: u64) -> Event {
    Event::Tick(Progress { requests, compared })
}

#[test]
fn a_shadow_step_mirrors_serves_no_one_and_waits_for_compared_answers() {
    let p = shadow_policy();
    let t0 = Instant::now();
    let mut m = Machine::new(&p, t0);
    assert_eq!(m.weights(&p), vec![100, 0], "the candidate serves no one");
    let mirror = m.mirror(&p).unwrap();
    assert_eq!((mirror.color, mirror.percent), (1, 50));
    // Counts start at the first tick: 7 compared answers happened before the step was counted.
    on(&mut m, &p, progress(0, 7), t0 + S).unwrap();
    assert_eq!(
        m.step_progress(
            &p,
            Progress {
                requests: 0,
                compared: 57
            }
        ),
        Some((50, 100))
    );
    // The hold is over, but only 99 answers were compared since: it waits.
    on(&mut m, &p, progress(500, 106), t0 + 20 * S).unwrap();
    assert_eq!(m.weights(&p), vec![100, 0]);
    assert!(m.mirror(&p).is_some());
    // The 100th compared answer ends the step at once; live requests do not count for it.
    on(&mut m, &p, progress(500, 107), t0 + 21 * S).unwrap();
    assert_eq!(m.weights(&p), vec![90, 10]);
    assert_eq!(m.mirror(&p), None, "weight steps do not mirror");
    assert_eq!(
        m.next_at(&p),
        Some(t0 + 31 * S),
        "its hold starts when it began"
    );
    // A weight step counts live requests from where they stood when it began.
    on(&mut m, &p, progress(519, 5000), t0 + 40 * S).unwrap();
    assert_eq!(m.weights(&p), vec![90, 10]);
    assert_eq!(
        m.step_progress(
            &p,
            Progress {
                requests: 519,
                compared: 0
            }
        ),
        Some((19, 20))
    );
    on(&mut m, &p, progress(520, 5000), t0 + 41 * S).unwrap();
    assert_eq!(m.weights(&p), vec![0, 100]);
    assert_eq!(
        m.step_progress(&p, Progress::default()),
        None,
        "this step waits for no requests"
    );
    on(&mut m, &p, progress(520, 5000), t0 + 51 * S).unwrap();
    assert_eq!(m.state(), StateName::Promoted);
}

#[test]
fn a_shadow_step_rolled_back_never_gives_the_candidate_live_traffic() {
    let p = shadow_policy();
    let t0 = Instant::now();
    let mut m = Machine::new(&p, t0);
    on(&mut m, &p, progress(0, 0), t0 + S).unwrap();
    on(&mut m, &p, breach("green"), t0 + 2 * S).unwrap();
    assert_eq!(m.state(), StateName::RolledBack);
    assert_eq!(
        m.mirror(&p),
        None,
        "a rolled-back shadow gets no more copies"
    );
    for s in 3..600 {
        on(
            &mut m,
            &p,
            progress(u64::from(s) * 10, u64::from(s) * 10),
            t0 + s * S,
        )
        .unwrap();
        assert_eq!(m.weights(&p), vec![100, 0]);
    }
    // Resume starts the shadow step over, its count included.
    on(&mut m, &p, Event::Resume, t0 + 600 * S).unwrap();
    assert_eq!(m.mirror(&p).map(|m| m.color), Some(1));
    on(&mut m, &p, progress(0, 6000), t0 + 601 * S).unwrap();
    on(&mut m, &p, progress(0, 6099), t0 + 620 * S).unwrap();
    assert_eq!(m.weights(&p), vec![100, 0], "99 compared since the resume");
    on(&mut m, &p, progress(0, 6100), t0 + 621 * S).unwrap();
    assert_eq!(m.weights(&p), vec![90, 10]);
}

#[test]
fn an_operator_rollback_during_a_shadow_step_stops_the_mirror() {
    let p = shadow_policy();
    let t0 = Instant::now();
    let mut m = Machine::new(&p, t0);
    on(&mut m, &p, Event::Rollback, t0).unwrap();
    assert_eq!(m.rolled_back["green"].kind, Kind::Manual);
    assert_eq!(m.mirror(&p), None);
    // Paused, a shadow step keeps mirroring, and its count keeps going.
    on(&mut m, &p, Event::Resume, t0 + S).unwrap();
    on(&mut m, &p, progress(0, 10), t0 + 2 * S).unwrap();
    on(&mut m, &p, Event::Pause, t0 + 3 * S).unwrap();
    assert!(m.mirror(&p).is_some());
    assert_eq!(
        m.step_progress(
            &p,
            Progress {
                requests: 0,
                compared: 60
            }
        ),
        Some((50, 100))
    );
}

#[test]
fn a_standing_shadow_mirrors_until_its_color_is_rolled_back() {
    let mut text = String::from(
        "listen: 127.0.0.1:1\ncolors:\n  blue: {backends: [{addr: 127.0.0.1:2}]}\n  green: {backends: [{addr: 127.0.0.1:3}]}\nstable: blue\nsplit: {blue: 100, green: 0}\n",
    );
    text.push_str("shadow: {color: green, percent: 25}\n");
    let p = route(&text);
    let t0 = Instant::now();
    let mut m = Machine::new(&p, t0);
    assert_eq!(m.mirror(&p).map(|m| (m.color, m.percent)), Some((1, 25)));
    on(&mut m, &p, breach("green"), t0).unwrap();
    assert_eq!(m.mirror(&p), None);
    on(&mut m, &p, Event::Resume, t0).unwrap();
    assert!(m.mirror(&p).is_some());
}

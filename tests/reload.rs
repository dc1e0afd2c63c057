//! Live policy: every reload trigger, bad files that change nothing, and reloads under load.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::*;

fn write_atomically(path: &Path, text: &str) {
    let tmp = path.with_extension("swp");
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

fn weights(s: &serde_json::Value) -> (u64, u64) {
    (
        s["weights"]["blue"].as_u64().unwrap(),
        s["weights"]["green"].as_u64().unwrap(),
    )
}

struct Setup {
    m: Models,
    p: Proxy,
    b: usize,
    g: usize,
}

impl Setup {
    fn new(split: (u32, u32), extra: &str) -> Setup {
        let mut m = Models::new();
        let (b, g) = (m.start("v1"), m.start("v2"));
        let p = Proxy::start(&two_colors(&[m.addr(b)], &[m.addr(g)], split, extra));
        Setup { m, p, b, g }
    }

    /// A policy with only the blue color left.
    fn only_blue(&self, extra: &str) -> String {
        let text = format!("listen: {{listen}}\nadmin: {{admin}}\ncolors:\n  blue:\n    backends:\n      - addr: {}\n{extra}", self.m.addr(self.b));
        fill(&text, self.p.addr, self.p.admin)
    }

    fn policy(&self, split: (u32, u32), extra: &str) -> String {
        fill(
            &two_colors(&[self.m.addr(self.b)], &[self.m.addr(self.g)], split, extra),
            self.p.addr,
            self.p.admin,
        )
    }
}

#[test]
fn an_edit_in_place_is_applied_within_2_seconds() {
    let s = Setup::new((100, 0), "");
    assert_eq!(s.p.status()["revision"], 1);
    let written = Instant::now();
    std::fs::write(&s.p.policy, s.policy((0, 100), "")).unwrap();
    let st =
        s.p.wait_status("the new split", |st| weights(st) == (0, 100));
    assert!(
        written.elapsed() <= Duration::from_secs(2),
        "applied after {:?}",
        written.elapsed()
    );
    assert_eq!(st["revision"], 2);
    assert_eq!(st["last_reload"]["ok"], true);
    for _ in 0..20 {
        assert_eq!(s.p.get("/predict", &[]).color(), "green");
    }
    assert!(s.p.metrics().contains("blueshift_policy_revision 2"));
}

#[test]
fn an_editors_rename_over_is_seen() {
    let s = Setup::new((100, 0), "");
    write_atomically(&s.p.policy, &s.policy((30, 70), ""));
    s.p.wait_status("the renamed-over policy", |st| weights(st) == (30, 70));
}

/// inotify reports every open of a file in a watched directory, the watcher's own reads too:
/// counted as changes, they kept an idle proxy re-reading its policy 20 times a second.
#[test]
fn an_idle_proxy_does_not_read_its_policy_again() {
    use notify::event::{AccessKind, EventKind};
    use notify::{RecursiveMode, Watcher};
    let s = Setup::new((100, 0), "");
    let (tx, rx) = std::sync::mpsc::channel();
    let mut watcher = notify::recommended_watcher(move |e: notify::Result<notify::Event>| {
        let _ = e.map(|e| tx.send(e));
    })
    .unwrap();
    let dir = s.p.policy.parent().unwrap();
    watcher.watch(dir, RecursiveMode::NonRecursive).unwrap();
    // The proxy's watcher works: an edit is read and applied.
    write_atomically(&s.p.policy, &s.policy((30, 70), ""));
    s.p.wait_status("the edited policy", |st| weights(st) == (30, 70));
    // From half a second after it, a second with no edit brings no open of the policy.
    let quiet_from = Instant::now() + Duration::from_millis(500);
    let until = quiet_from + Duration::from_secs(1);
    let mut opens = 0;
    while let Some(left) = until.checked_duration_since(Instant::now()) {
        let Ok(e) = rx.recv_timeout(left) else { break };
        let open = matches!(e.kind, EventKind::Access(AccessKind::Open(_)));
        if open && Instant::now() >= quiet_from && e.paths.contains(&s.p.policy) {
            opens += 1;
        }
    }
    assert_eq!(
        opens, 0,
        "the idle proxy opened its policy {opens} times in a second"
    );
}

#[test]
fn a_configmap_symlink_swap_is_seen() {
    let mut m = Models::new();
    let (b, g) = (m.start("v1"), m.start("v2"));
    let (addr, admin) = ports();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let text = |split| {
        fill(
            &two_colors(&[m.addr(b)], &[m.addr(g)], split, ""),
            addr,
            admin,
        )
    };
    // The layout kubelet makes: policy.yaml -> ..data/policy.yaml, ..data -> ..2024_v1
    std::fs::create_dir(d.join("..2024_v1")).unwrap();
    std::fs::write(d.join("..2024_v1/policy.yaml"), text((100, 0))).unwrap();
    std::os::unix::fs::symlink("..2024_v1", d.join("..data")).unwrap();
    std::os::unix::fs::symlink("..data/policy.yaml", d.join("policy.yaml")).unwrap();
    let path = d.join("policy.yaml");
    let p = Proxy::launch(&path, addr, admin, &[], dir);
    let d = p.policy.parent().unwrap().to_path_buf();
    std::fs::create_dir(d.join("..2024_v2")).unwrap();
    std::fs::write(d.join("..2024_v2/policy.yaml"), text((10, 90))).unwrap();
    std::os::unix::fs::symlink("..2024_v2", d.join("..data_tmp")).unwrap();
    std::fs::rename(d.join("..data_tmp"), d.join("..data")).unwrap();
    p.wait_status("the swapped ConfigMap", |st| weights(st) == (10, 90));
}

/// A policy path that is a symlink into a directory the watcher does not see, so only an
/// explicit trigger can apply an edit.
fn unwatched() -> (
    Models,
    Proxy,
    std::path::PathBuf,
    impl Fn((u32, u32)) -> String,
) {
    let mut m = Models::new();
    let (b, g) = (m.start("v1"), m.start("v2"));
    let (addr, admin) = ports();
    let dir = tempfile::tempdir().unwrap();
    // A subdirectory: the watch on the policy's directory does not reach into it, and it goes
    // with the proxy's directory when the test ends.
    let real_dir = dir.path().join("elsewhere");
    std::fs::create_dir(&real_dir).unwrap();
    let real = real_dir.join("real.yaml");
    let (ba, ga) = (m.addr(b), m.addr(g));
    let text = move |split| fill(&two_colors(&[ba], &[ga], split, ""), addr, admin);
    std::fs::write(&real, text((100, 0))).unwrap();
    std::os::unix::fs::symlink(&real, dir.path().join("policy.yaml")).unwrap();
    let path = dir.path().join("policy.yaml");
    let p = Proxy::launch(&path, addr, admin, &[], dir);
    (m, p, real, text)
}

#[test]
fn sighup_reloads() {
    let (_m, p, real, text) = unwatched();
    std::fs::write(&real, text((40, 60))).unwrap();
    p.signal("HUP");
    p.wait_status("the SIGHUP reload", |st| weights(st) == (40, 60));
}

#[test]
fn post_reload_reloads_and_answers_with_the_new_status() {
    let (_m, p, real, text) = unwatched();
    std::fs::write(&real, text((25, 75))).unwrap();
    let r = p.admin_post("/reload", &[]);
    assert_eq!(r.status, 200, "{}", r.body);
    let st: serde_json::Value = serde_json::from_str(&r.body).unwrap();
    assert_eq!(weights(&st), (25, 75));
    assert_eq!(st["revision"], 2);
    // Reloading identical content is not a new revision.
    let r = p.admin_post("/reload", &[]);
    let st: serde_json::Value = serde_json::from_str(&r.body).unwrap();
    assert_eq!(st["revision"], 2);
}

#[test]
fn bad_files_change_nothing_and_are_reported() {
    let s = Setup::new((100, 0), "");
    let good = s.policy((100, 0), "");
    let truncated = &good[..good.len() / 2];
    let cases = [
        ("invalid", good.replace("stable: blue", "stable: purple")),
        ("broken YAML", good.replace("split:", "split: [")),
        ("empty", String::new()),
        ("truncated", truncated.to_string()),
    ];
    for (n, (what, text)) in cases.iter().enumerate() {
        write_atomically(&s.p.policy, text);
        let st =
            s.p.wait_status(&format!("the {what} file to be reported"), |st| {
                st["last_reload"]["ok"] == false
                    && st["last_reload"]["at"] != serde_json::Value::Null
            });
        let error = st["last_reload"]["error"].as_str().unwrap().to_owned();
        assert_eq!(st["revision"], 1, "{what}: {error}");
        assert_eq!(weights(&st), (100, 0), "{what}");
        if *what != "empty" {
            assert!(
                error
                    .split(':')
                    .nth(1)
                    .is_some_and(|c| c.trim().parse::<u32>().is_ok()),
                "{what} error lacks line:column: {error}"
            );
        }
        for _ in 0..10 {
            assert_eq!(s.p.get("/predict", &[]).status, 200, "{what}");
        }
        let errors = format!(
            "blueshift_policy_reloads_total{{result=\"error\"}} {}",
            n + 1
        );
        eventually("the error counter", || {
            s.p.metrics().contains(&errors).then_some(())
        });
        // Put the good file back so the next bad one is a change again.
        write_atomically(&s.p.policy, &good);
        s.p.wait_status("the good file again", |st| st["last_reload"]["ok"] == true);
    }
    // A deleted file is bad too, never "no colors".
    std::fs::remove_file(&s.p.policy).unwrap();
    let st = s.p.wait_status("the deletion to be reported", |st| {
        st["last_reload"]["ok"] == false
    });
    assert!(
        st["last_reload"]["error"]
            .as_str()
            .unwrap()
            .contains("no such file"),
        "{st}"
    );
    assert_eq!(s.p.get("/predict", &[]).status, 200);
    write_atomically(&s.p.policy, &s.policy((50, 50), ""));
    let st =
        s.p.wait_status("a later good file", |st| weights(st) == (50, 50));
    assert_eq!(st["revision"], 2);
}

#[test]
fn twenty_reloads_under_load_fail_no_request() {
    let s = Setup::new((50, 50), "");
    let loads: Vec<Load> = (0..4)
        .map(|_| Load::start(s.p.addr, Duration::from_millis(2)))
        .collect();
    for i in 0..20u32 {
        let split = if i % 2 == 0 { (80, 20) } else { (50, 50) };
        write_atomically(&s.p.policy, &s.policy(split, ""));
        let r = s.p.admin_post("/reload", &[]);
        assert_eq!(r.status, 200, "{}", r.body);
        let st: serde_json::Value = serde_json::from_str(&r.body).unwrap();
        assert_eq!(weights(&st), (split.0 as u64, split.1 as u64));
        // Let the clients put real traffic through each revision.
        let served =
            || s.m.servers[s.b].controls.predictions() + s.m.servers[s.g].controls.predictions();
        let before = served();
        eventually("traffic between reloads", || {
            (served() >= before + 20).then_some(())
        });
    }
    let samples: Vec<Sample> = loads.into_iter().flat_map(Load::stop).collect();
    let failed: Vec<_> = samples.iter().filter(|x| x.status != 200).collect();
    assert!(samples.len() >= 400, "only {} requests", samples.len());
    assert!(
        failed.is_empty(),
        "{} of {} failed: {:?}",
        failed.len(),
        samples.len(),
        &failed[..failed.len().min(5)]
    );
    assert_eq!(s.p.status()["revision"], 21);
}

#[test]
fn pins_survive_a_reload_while_their_color_is_eligible() {
    let s = Setup::new((50, 50), "affinity:\n  cookie: blueshift\n");
    let green = [("cookie", "blueshift=green")];
    assert_eq!(s.p.get("/predict", &green).color(), "green");
    // Draining green to weight 0 keeps the pinned session there.
    write_atomically(
        &s.p.policy,
        &s.policy((100, 0), "affinity:\n  cookie: blueshift\n"),
    );
    s.p.wait_status("the drain", |st| weights(st) == (100, 0));
    for _ in 0..10 {
        let r = s.p.get("/predict", &green);
        assert_eq!((r.color(), r.pinned("blueshift")), ("green", None));
    }
    // Removing green re-assigns its sessions.
    let only_blue = s.only_blue("affinity:\n  cookie: blueshift\n");
    write_atomically(&s.p.policy, &only_blue);
    s.p.wait_status("green's removal", |st| st["colors"].get("green").is_none());
    let r = s.p.get("/predict", &green);
    assert_eq!(
        (r.color(), r.pinned("blueshift").as_deref()),
        ("blue", Some("blue"))
    );
}

#[test]
fn an_unrelated_edit_does_not_restart_the_rollout_but_a_new_rollout_does() {
    let rollout = |first: u32| {
        format!("rollout:\n  candidate: green\n  steps:\n    - {{weight: {first}, hold: 500ms}}\n    - {{weight: 50, hold: 1h}}\n")
    };
    let s = Setup::new((90, 10), &rollout(10));
    s.p.wait_status("step 2", |st| st["rollout"]["step"] == 2);
    write_atomically(&s.p.policy, &s.policy((80, 20), &rollout(10)));
    let st =
        s.p.wait_status("the unrelated edit", |st| st["revision"] == 2);
    assert_eq!(
        (st["rollout"]["step"].as_u64(), weights(&st)),
        (Some(2), (50, 50))
    );
    write_atomically(&s.p.policy, &s.policy((80, 20), &rollout(5)));
    let st = s.p.wait_status("the new rollout", |st| st["revision"] == 3);
    assert_eq!(
        (st["rollout"]["step"].as_u64(), weights(&st)),
        (Some(1), (95, 5))
    );
}

#[test]
fn a_reload_that_changes_a_rolled_back_color_clears_its_rollback() {
    let mut s = Setup::new((50, 50), "");
    assert_eq!(s.p.admin_post("/rollback", &[]).status, 200);
    // An unrelated edit keeps it rolled back.
    write_atomically(&s.p.policy, &s.policy((60, 40), ""));
    let st =
        s.p.wait_status("the unrelated edit", |st| st["revision"] == 2);
    assert_eq!(st["state"], "rolled_back");
    // New green backends: a new candidate deserves traffic again.
    let g2 = s.m.start("v2");
    let text = fill(
        &two_colors(&[s.m.addr(s.b)], &[s.m.addr(g2)], (60, 40), ""),
        s.p.addr,
        s.p.admin,
    );
    write_atomically(&s.p.policy, &text);
    let st = s.p.wait_status("green's new backends", |st| {
        st["state"] == "steady" && st["weights"]["green"] == 40
    });
    assert_eq!(st["rollback"], serde_json::Value::Null);
}

#[test]
fn a_changed_listen_address_is_reported_as_needing_a_restart() {
    let s = Setup::new((50, 50), "");
    let moved = s
        .policy((50, 50), "")
        .replace(&format!("listen: {}", s.p.addr), "listen: 127.0.0.1:1");
    write_atomically(&s.p.policy, &moved);
    let st = s.p.wait_status("the restart notice", |st| {
        st["restart_required"]
            .as_array()
            .is_some_and(|a| !a.is_empty())
    });
    assert!(
        st["restart_required"][0]
            .as_str()
            .unwrap()
            .starts_with("listen changed"),
        "{st}"
    );
    assert_eq!(
        s.p.get("/predict", &[]).status,
        200,
        "still serving on the old address"
    );
}

#[test]
fn a_request_in_flight_finishes_on_the_policy_it_started_with() {
    let s = Setup::new((0, 100), "");
    s.m.servers[s.g]
        .controls
        .set_delay(Duration::from_millis(800));
    let addr = s.p.addr;
    let slow = std::thread::spawn(move || get(addr, "/predict", &[]).unwrap());
    eventually("the slow request to reach green", || {
        (s.m.servers[s.g].controls.predictions() > 0).then_some(())
    });
    // Remove green while the request is still inside it.
    let only_blue = s.only_blue("");
    write_atomically(&s.p.policy, &only_blue);
    s.p.wait_status("green's removal", |st| st["colors"].get("green").is_none());
    let r = slow.join().unwrap();
    assert_eq!(
        (r.status, r.color(), r.header("x-model-version")),
        (200, "green", Some("v2"))
    );
    assert_eq!(s.p.get("/predict", &[]).color(), "blue");
}

//! Pingora's graceful upgrade: a new process takes the sockets over and no request fails.

mod common;

use std::time::Duration;

use common::*;

#[test]
fn serve_upgrade_then_sigquit_hands_over_without_a_failed_request() {
    let mut m = Models::new();
    let (b, g) = (m.start("v1"), m.start("v2"));
    let (addr, admin) = ports();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_path_buf();
    let conf = d.join("pingora.yaml");
    std::fs::write(
        &conf,
        format!(
            "---\nversion: 1\npid_file: {}\nupgrade_sock: {}\n",
            d.join("blueshift.pid").display(),
            d.join("upgrade.sock").display()
        ),
    )
    .unwrap();
    let policy = d.join("policy.yaml");
    std::fs::write(
        &policy,
        fill(
            &two_colors(&[m.addr(b)], &[m.addr(g)], (50, 50), ""),
            addr,
            admin,
        ),
    )
    .unwrap();
    let conf_arg = conf.to_str().unwrap();
    let old = Proxy::attach(
        Proxy::spawn(&policy, &["--pingora-conf", conf_arg], &[]),
        &policy,
        addr,
        admin,
        dir,
    );
    let load = Load::start(addr, Duration::from_millis(2));
    eventually("traffic through the old process", || {
        (m.servers[b].controls.predictions() > 20).then_some(())
    });

    // The new process waits on the upgrade socket; SIGQUIT makes the old one send its sockets.
    let new_child = Proxy::spawn(&policy, &["--pingora-conf", conf_arg, "--upgrade"], &[]);
    let sock = d.join("upgrade.sock");
    eventually("the new process to listen on the upgrade socket", || {
        sock.exists().then_some(())
    });
    old.signal("QUIT");
    let new = Proxy::attach(
        new_child,
        &policy,
        addr,
        admin,
        tempfile::tempdir().unwrap(),
    );
    let served = m.servers[b].controls.predictions();
    eventually("traffic through the new process", || {
        (m.servers[b].controls.predictions() > served + 20).then_some(())
    });
    let mut old = old;
    eventually("the old process to exit", || {
        (!old.is_running()).then_some(())
    });
    let samples = load.stop();
    let failed: Vec<_> = samples.iter().filter(|s| s.status != 200).collect();
    assert!(samples.len() > 50);
    assert!(
        failed.is_empty(),
        "{} of {} failed: {:?}",
        failed.len(),
        samples.len(),
        &failed[..failed.len().min(5)]
    );
    assert_eq!(new.get("/predict", &[]).status, 200);
}

//! `blueshift check` as a user runs it, on policy text written to a file.

use std::process::{Command, Output};

/// The real binary with these arguments.
pub fn blueshift(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_blueshift"))
        .args(args)
        .output()
        .unwrap()
}

pub fn check_text(yaml: &str) -> (i32, String, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("policy.yaml");
    std::fs::write(&path, yaml).unwrap();
    let out = blueshift(&["check", path.to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&out.stderr).replace(path.to_str().unwrap(), "FILE");
    (
        out.status.code().unwrap(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr,
    )
}

/// Asserts that `yaml` is rejected with a message containing `expected` at `line:col`.
pub fn rejects(yaml: &str, at: &str, expected: &str) {
    let (code, stdout, stderr) = check_text(yaml);
    assert_eq!(code, 1, "accepted:\n{yaml}\nstdout: {stdout}");
    let line = stderr
        .lines()
        .find(|l| l.contains(expected))
        .unwrap_or_else(|| panic!("no `{expected}` in:\n{stderr}"));
    assert!(
        line.starts_with(&format!("FILE:{at}")),
        "wanted FILE:{at}, got: {line}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
}

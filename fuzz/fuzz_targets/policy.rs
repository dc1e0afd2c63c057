//! The policy loader: any text is a policy or a list of problems, never a panic.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    if let Err(problems) = blueshift::config::parse_in(&text, Path::new("/nonexistent")) {
        assert!(!problems.0.is_empty());
    }
});

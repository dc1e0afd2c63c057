//! The house in layers: each folder of `src/` imports only the folders below it, in the order the
//! crate doc's `# Layout` lists them, so the import graph has no cycles between layers. Read from
//! the sources themselves: every `crate::<layer>` path outside a file's unit tests.

use std::path::Path;

/// Bottom first: a layer may use the ones before it.
const LAYERS: [&str; 9] = [
    "model_server",
    "config",
    "judge",
    "metrics",
    "route",
    "proxy",
    "control",
    "ops",
    "app",
];

fn rank(layer: &str) -> Option<usize> {
    LAYERS.iter().position(|l| *l == layer)
}

/// Every `.rs` file under `dir`.
fn sources(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            sources(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The layers a file's code (its unit tests left out) names with `crate::`.
fn uses(text: &str) -> Vec<(usize, String)> {
    let code = text.split("#[cfg(test)]\nmod tests").next().unwrap_or(text);
    let mut out = Vec::new();
    for (i, line) in code.lines().enumerate() {
        let mut rest = line;
        while let Some(at) = rest.find("crate::") {
            rest = &rest[at + "crate::".len()..];
            let name: String = rest
                .chars()
                .take_while(|c| c.is_ascii_lowercase() || *c == '_')
                .collect();
            out.push((i + 1, name));
        }
    }
    out
}

#[test]
fn every_layer_imports_only_the_layers_below_it() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    sources(&src, &mut files);
    let mut upward = Vec::new();
    for file in &files {
        let rel = file.strip_prefix(&src).unwrap();
        let Some(layer) = rel.components().next().and_then(|c| c.as_os_str().to_str()) else {
            continue;
        };
        if rel.components().count() == 1 {
            continue; // lib.rs and main.rs stand above every layer
        }
        let mine = rank(layer).unwrap_or_else(|| panic!("{} is in no layer", rel.display()));
        for (line, used) in uses(&std::fs::read_to_string(file).unwrap()) {
            if rank(&used).is_some_and(|theirs| theirs > mine) {
                upward.push(format!("src/{}:{line}: {layer} uses {used}", rel.display()));
            }
        }
    }
    assert!(
        upward.is_empty(),
        "imports against the layer order:\n{}",
        upward.join("\n")
    );
}

#[test]
fn the_crate_doc_names_every_layer_and_the_library_declares_them() {
    let lib =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("src/lib.rs")).unwrap();
    let layout = lib.split("# Layout").nth(1).expect("a # Layout section");
    let mut last = 0;
    for layer in LAYERS {
        let at = layout
            .find(&format!("[`{layer}`]"))
            .unwrap_or_else(|| panic!("# Layout does not name {layer}"));
        assert!(at >= last, "# Layout lists {layer} out of order");
        last = at;
        assert!(
            lib.contains(&format!("pub mod {layer};")),
            "lib.rs does not declare {layer}"
        );
    }
}

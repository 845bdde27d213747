//! Embeds the repository's `rules/` pack: writes `$OUT_DIR/bundled_rules.rs` with one
//! `include_str!` per rule file (`RULES`) and per rule test file (`TESTS`, from `rules/tests/`),
//! so `RuleSet::bundled()` needs no files at run time (Lambda ships one binary).

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

fn collect(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            collect(&path, out);
        } else if path.extension().is_some_and(|e| e == "yml" || e == "yaml") {
            out.push(path);
        }
    }
}

fn main() {
    println!("cargo:rerun-if-changed=../rules");
    println!("cargo:rerun-if-changed=build.rs");
    let manifest = std::env::var("CARGO_MANIFEST_DIR").unwrap_or_else(|_| ".".into());
    let rules_dir = Path::new(&manifest).join("..").join("rules");
    let mut files = Vec::new();
    collect(&rules_dir, &mut files);
    files.sort();
    let (mut rules, mut tests) = (String::new(), String::new());
    for path in &files {
        let Ok(rel) = path.strip_prefix(&rules_dir) else {
            continue;
        };
        let rel = rel.to_string_lossy().replace('\\', "/");
        let abs = path.canonicalize().unwrap_or_else(|_| path.clone());
        let line = format!(
            "    ({:?}, include_str!({:?})),\n",
            format!("rules/{rel}"),
            abs.display().to_string()
        );
        let is_test = rel.split('/').any(|part| part == "tests");
        let target = if is_test { &mut tests } else { &mut rules };
        target.push_str(&line);
    }
    let mut code = String::new();
    let _ = write!(
        code,
        "/// Bundled rule files: (`rules/<path>`, YAML).\npub(crate) const RULES: &[(&str, &str)] = &[\n{rules}];\n\
         /// Bundled rule test files: (`rules/tests/<path>`, YAML).\npub(crate) const TESTS: &[(&str, &str)] = &[\n{tests}];\n"
    );
    let out = PathBuf::from(std::env::var("OUT_DIR").unwrap_or_else(|_| ".".into()))
        .join("bundled_rules.rs");
    if let Err(e) = std::fs::write(&out, code) {
        println!("cargo:warning=cannot write {}: {e}", out.display());
        std::process::exit(1);
    }
}

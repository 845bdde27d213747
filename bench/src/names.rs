//! The event names the rule pack selects on: what a hand-written baseline would check.

use anyhow::Context as _;
use std::collections::BTreeSet;
use std::path::Path;
use yaml_rust2::{Yaml, YamlLoader};

fn collect(node: &Yaml, out: &mut BTreeSet<String>) {
    match node {
        Yaml::Hash(map) => {
            for (k, v) in map {
                // exact `eventName` selections only: `|startswith` and friends are not a set
                if k.as_str() == Some("eventName") {
                    match v {
                        Yaml::String(s) => {
                            out.insert(s.clone());
                        }
                        Yaml::Array(items) => {
                            out.extend(items.iter().filter_map(|i| i.as_str().map(str::to_owned)))
                        }
                        _ => {}
                    }
                } else {
                    collect(v, out);
                }
            }
        }
        Yaml::Array(items) => items.iter().for_each(|i| collect(i, out)),
        _ => {}
    }
}

fn walk_dir(dir: &Path, files: &mut Vec<std::path::PathBuf>) -> anyhow::Result<()> {
    for entry in std::fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
        let path = entry?.path();
        if path.is_dir() {
            if path.file_name().is_some_and(|n| n != "tests") {
                walk_dir(&path, files)?;
            }
        } else if path.extension().is_some_and(|e| e == "yml" || e == "yaml") {
            files.push(path);
        }
    }
    Ok(())
}

/// Every `eventName` value in the `detection` sections of the rules below `dir`.
///
/// # Errors
/// Unreadable files or YAML that does not parse.
pub fn event_names(dir: &Path) -> anyhow::Result<BTreeSet<String>> {
    let mut files = Vec::new();
    walk_dir(dir, &mut files)?;
    let mut out = BTreeSet::new();
    for f in files {
        let text =
            std::fs::read_to_string(&f).with_context(|| format!("reading {}", f.display()))?;
        let docs =
            YamlLoader::load_from_str(&text).with_context(|| format!("parsing {}", f.display()))?;
        for doc in docs {
            collect(&doc["detection"], &mut out);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_come_from_detection_maps_only() {
        let docs = YamlLoader::load_from_str(
            "title: x\ndetection:\n  a:\n    eventName: [StopLogging, DeleteTrail]\n  b:\n  - eventName: ConsoleLogin\n  c:\n    eventName|startswith: Put\n  condition: a or b\nfields: [eventName]\n",
        )
        .unwrap();
        let mut out = BTreeSet::new();
        collect(&docs[0]["detection"], &mut out);
        assert_eq!(
            out.into_iter().collect::<Vec<_>>(),
            ["ConsoleLogin", "DeleteTrail", "StopLogging"]
        );
    }
}

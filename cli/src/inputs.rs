//! What `trailwatch scan` reads: local files (folders walked recursively) and S3 objects.

use anyhow::{bail, Context as _};
use std::path::{Path, PathBuf};
use time::Date;
use trailwatch::model::{KeyKind, S3Key};

/// One thing to scan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Input {
    /// A local file.
    File(PathBuf),
    /// An S3 object.
    S3 {
        /// Bucket.
        bucket: String,
        /// Key.
        key: String,
        /// Size from the listing.
        size: u64,
    },
}

impl Input {
    /// How the input is named in findings (`source`) and messages.
    pub fn label(&self) -> String {
        match self {
            Input::File(p) => p.display().to_string(),
            Input::S3 { bucket, key, .. } => format!("s3://{bucket}/{key}"),
        }
    }
}

/// An `s3://bucket/prefix` argument.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct S3Location {
    /// Bucket.
    pub bucket: String,
    /// Key prefix (may be empty).
    pub prefix: String,
}

/// Parse `s3://bucket[/prefix]`; `None` when `arg` is not an S3 URL.
pub fn parse_s3_url(arg: &str) -> Option<anyhow::Result<S3Location>> {
    let rest = arg.strip_prefix("s3://")?;
    let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
    if bucket.is_empty() {
        return Some(Err(anyhow::anyhow!("{arg}: no bucket name after s3://")));
    }
    Some(Ok(S3Location {
        bucket: bucket.to_owned(),
        prefix: prefix.to_owned(),
    }))
}

/// File names a folder walk picks up; files named explicitly are always read.
fn is_log_like(path: &Path) -> bool {
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or_default();
    [
        ".json.gz",
        ".json",
        ".jsonl",
        ".ndjson",
        ".jsonl.gz",
        ".ndjson.gz",
    ]
    .iter()
    .any(|ext| name.ends_with(ext))
}

/// Whether a key or relative path should be evaluated, judged by the trail-bucket layout:
/// digests and AWS Config files are skipped; paths outside the layout are kept (a user's
/// folder of exported records).
pub fn is_evaluated_path(path: &str) -> bool {
    let key = S3Key::parse(&path.replace('\\', "/"));
    match key.kind {
        KeyKind::Log | KeyKind::Insight | KeyKind::Other => true,
        KeyKind::Digest | KeyKind::Config | KeyKind::WritabilityCheck => false,
    }
}

/// Walk local paths: files as given, folders recursively (sorted, so output is stable).
///
/// # Errors
/// When a path does not exist or a folder cannot be read.
pub fn collect_local(paths: &[PathBuf], out: &mut Vec<Input>) -> anyhow::Result<()> {
    for p in paths {
        let meta = std::fs::metadata(p).with_context(|| format!("{}", p.display()))?;
        if meta.is_dir() {
            walk(p, out)?;
        } else {
            out.push(Input::File(p.clone()));
        }
    }
    Ok(())
}

fn walk(dir: &Path, out: &mut Vec<Input>) -> anyhow::Result<()> {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("reading folder {}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            walk(&p, out)?;
        } else if is_log_like(&p) && is_evaluated_path(&p.to_string_lossy()) {
            out.push(Input::File(p));
        }
    }
    Ok(())
}

/// Whether an S3 key's date (from the file-name timestamp, else the date folders) falls in
/// `[since, until]`; keys without a date are kept.
pub fn in_date_range(key: &S3Key, since: Option<Date>, until: Option<Date>) -> bool {
    let date = key.file_time.map(|t| t.date()).or(key.date);
    match date {
        None => true,
        Some(d) => since.is_none_or(|s| d >= s) && until.is_none_or(|u| d <= u),
    }
}

/// Parse `YYYY-MM-DD` (or a full RFC 3339 time, whose date is used).
pub fn parse_date(s: &str) -> anyhow::Result<Date> {
    let fmt = time::macros::format_description!("[year]-[month]-[day]");
    if let Ok(d) = Date::parse(s, &fmt) {
        return Ok(d);
    }
    match trailwatch::model::parse_time(s) {
        Some(t) => Ok(t.date()),
        None => bail!("{s:?} is not a date (expected YYYY-MM-DD)"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn s3_urls() {
        assert_eq!(
            parse_s3_url("s3://b/AWSLogs/1").unwrap().unwrap(),
            S3Location {
                bucket: "b".into(),
                prefix: "AWSLogs/1".into()
            }
        );
        assert_eq!(parse_s3_url("s3://b").unwrap().unwrap().prefix, "");
        assert!(parse_s3_url("s3:///x").unwrap().is_err());
        assert!(parse_s3_url("/tmp/x").is_none());
    }

    #[test]
    fn digests_and_config_are_not_evaluated() {
        assert!(!is_evaluated_path("x/AWSLogs/111122223333/CloudTrail-Digest/us-east-1/2024/01/01/111122223333_CloudTrail-Digest_us-east-1_t_us-east-1_20240101T000000Z.json.gz"));
        assert!(is_evaluated_path("AWSLogs/111122223333/CloudTrail/us-east-1/2024/01/01/111122223333_CloudTrail_us-east-1_20240101T0000Z_a.json.gz"));
        assert!(is_evaluated_path("exports/records.json"));
    }

    #[test]
    fn date_range() {
        let k = S3Key::parse("AWSLogs/111122223333/CloudTrail/us-east-1/2024/01/05/111122223333_CloudTrail_us-east-1_20240105T0000Z_a.json.gz");
        let d = |s| parse_date(s).unwrap();
        assert!(in_date_range(
            &k,
            Some(d("2024-01-05")),
            Some(d("2024-01-05"))
        ));
        assert!(!in_date_range(&k, Some(d("2024-01-06")), None));
        assert!(!in_date_range(&k, None, Some(d("2024-01-04"))));
        assert!(in_date_range(
            &S3Key::parse("other/x.json"),
            Some(d("2030-01-01")),
            None
        ));
        assert!(parse_date("yesterday").is_err());
    }
}

//! `trailwatch validate`: CloudTrail log file integrity validation (digest chains).
//!
//! Arguments and output formats only; the rules live in `trailwatch::audit::digest`.
//! Local mode reads a directory copy of the bucket plus the digests' metadata and a
//! `ListPublicKeys` response from files. S3 mode (`--bucket`) reads the bucket through
//! the S3 digest source (credentials, region and `AWS_ENDPOINT_URL` from the environment)
//! and the keys from CloudTrail `ListPublicKeys`, unless `--public-keys` is given.
//!
//! Exit codes: 0 when every file is `valid`, 1 when the report is not ok, 2 on usage or
//! I/O errors (printed to stderr; `run` returns `Ok(2)` for them so `main` need not map).

use std::collections::BTreeMap;
use std::io::Write as _;
use std::num::NonZeroUsize;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Context as _};
use clap::{ArgGroup, Args, ValueEnum};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;
use trailwatch::audit::digest::{
    trail_digest_regions, validate, DigestReport, DigestSource as _, LocalDigestSource,
    PublicKeySet, TrailArn, ValidateRequest,
};
use trailwatch::ports::aws::S3DigestSource;

/// Objects fetched and hashed at once: enough to hide S3 latency, small enough for 2 cores.
const MAX_IN_FLIGHT: usize = 16;

/// Validate a trail's signed digest chains and the log files they vouch for.
#[derive(Debug, Clone, Args)]
#[command(group(ArgGroup::new("source").required(true).args(["local", "bucket"])))]
pub struct ValidateArgs {
    /// Directory holding a copy of the trail bucket (each object at its S3 key).
    #[arg(long, value_name = "DIR", requires_all = ["metadata", "public_keys", "bucket_name"])]
    pub local: Option<PathBuf>,
    /// JSON map of digest key to its user metadata (`signature`, `signature-algorithm`, ...).
    #[arg(long, value_name = "FILE", requires = "local")]
    pub metadata: Option<PathBuf>,
    /// A CloudTrail ListPublicKeys response (JSON) covering the window.
    #[arg(long, value_name = "FILE")]
    pub public_keys: Option<PathBuf>,
    /// Name of the bucket the digests were delivered to (defaults to --bucket in S3 mode).
    #[arg(long, value_name = "B")]
    pub bucket_name: Option<String>,
    /// S3 mode: read the trail bucket directly (public keys from CloudTrail ListPublicKeys).
    #[arg(long, value_name = "BUCKET", conflicts_with_all = ["local", "metadata"])]
    pub bucket: Option<String>,
    /// The trail: arn:<partition>:cloudtrail:<home-region>:<account>:trail/<name>.
    #[arg(long, value_name = "ARN")]
    pub trail_arn: String,
    /// Validate digests delivered from this time (RFC 3339).
    #[arg(long, value_name = "T", value_parser = parse_time)]
    pub start_time: OffsetDateTime,
    /// Validate digests up to one hour after this time (RFC 3339).
    #[arg(long, value_name = "T", value_parser = parse_time)]
    pub end_time: OffsetDateTime,
    /// The trail's LatestDigestDeliveryTime (GetTrailStatus), RFC 3339: detects a deleted
    /// newest digest.
    #[arg(long, value_name = "T", value_parser = parse_time)]
    pub latest_delivery_time: Option<OffsetDateTime>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub format: Format,
}

/// Report formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// `{"ok": bool, "files": [{"key", "status", "detail"?}]}`.
    Json,
    /// Aligned status and key columns plus a summary line.
    Table,
}

fn parse_time(s: &str) -> Result<OffsetDateTime, String> {
    OffsetDateTime::parse(s, &Rfc3339).map_err(|e| format!("not an RFC 3339 time ({e})"))
}

/// Runs `trailwatch validate`; the exit code is 0 (ok), 1 (not ok) or 2 (error, printed).
///
/// # Errors
/// Only when the report cannot be written to stdout; every other failure is printed and
/// becomes exit code 2.
pub async fn run(args: &ValidateArgs) -> anyhow::Result<ExitCode> {
    let report = match build_report(args).await {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: {e:#}");
            return Ok(ExitCode::from(2));
        }
    };
    let mut out = std::io::stdout().lock();
    match args.format {
        Format::Json => {
            serde_json::to_writer_pretty(&mut out, &report).context("writing the report")?;
            writeln!(out).context("writing the report")?;
        }
        Format::Table => write_table(&mut out, &report).context("writing the report")?,
    }
    out.flush().context("writing the report")?;
    Ok(if report.ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

async fn build_report(args: &ValidateArgs) -> anyhow::Result<DigestReport> {
    let trail = TrailArn::parse(&args.trail_arn)?;
    match (&args.local, &args.bucket) {
        (Some(local), _) => local_report(args, trail, local).await,
        (None, Some(bucket)) => s3_report(args, trail, bucket).await,
        (None, None) => bail!("give --local DIR (a bucket copy) or --bucket BUCKET (S3)"),
    }
}

async fn local_report(
    args: &ValidateArgs,
    trail: TrailArn,
    local: &Path,
) -> anyhow::Result<DigestReport> {
    let (Some(metadata), Some(keys_file), Some(bucket_name)) =
        (&args.metadata, &args.public_keys, &args.bucket_name)
    else {
        bail!("--local needs --metadata, --public-keys and --bucket-name");
    };
    let keys = read_public_keys(keys_file).await?;
    let source = LocalDigestSource::open(local, metadata)
        .await
        .context("opening the local bucket copy")?;
    let req = request(args, trail, bucket_name);
    validate(&source, &keys, &req)
        .await
        .context("validating digests")
}

/// S3 mode: objects and metadata through S3; public keys from `--public-keys` or, by
/// default, CloudTrail `ListPublicKeys` in every region the trail's digests come from.
async fn s3_report(
    args: &ValidateArgs,
    trail: TrailArn,
    bucket: &str,
) -> anyhow::Result<DigestReport> {
    let source = S3DigestSource::from_env(bucket).await;
    let keys = match &args.public_keys {
        Some(file) => read_public_keys(file).await?,
        None => {
            let listed = source
                .list_keys(None)
                .await
                .with_context(|| format!("listing s3://{bucket}"))?;
            let regions = trail_digest_regions(listed.iter().map(String::as_str), &trail);
            source
                .list_public_keys(&regions, args.start_time)
                .await
                .context("CloudTrail ListPublicKeys")?
        }
    };
    let req = request(args, trail, args.bucket_name.as_deref().unwrap_or(bucket));
    validate(&source, &keys, &req)
        .await
        .with_context(|| format!("validating digests in s3://{bucket}"))
}

async fn read_public_keys(file: &Path) -> anyhow::Result<PublicKeySet> {
    let body = tokio::fs::read(file)
        .await
        .with_context(|| format!("reading public keys {}", file.display()))?;
    PublicKeySet::from_list_public_keys_json(&body)
        .with_context(|| format!("parsing public keys {}", file.display()))
}

fn request(args: &ValidateArgs, trail: TrailArn, bucket_name: &str) -> ValidateRequest {
    ValidateRequest {
        bucket_name: bucket_name.to_owned(),
        trail,
        start_time: args.start_time,
        end_time: args.end_time,
        latest_delivery_time: args.latest_delivery_time,
        list_prefix: None,
        max_in_flight: NonZeroUsize::new(MAX_IN_FLIGHT).unwrap_or(NonZeroUsize::MIN),
    }
}

fn write_table(out: &mut impl std::io::Write, report: &DigestReport) -> std::io::Result<()> {
    let width = report
        .files
        .iter()
        .map(|f| f.status.as_str().len())
        .max()
        .unwrap_or(0)
        .max("STATUS".len());
    writeln!(out, "{:<width$}  KEY", "STATUS")?;
    for f in &report.files {
        match &f.detail {
            Some(d) => writeln!(out, "{:<width$}  {}  ({d})", f.status.as_str(), f.key)?,
            None => writeln!(out, "{:<width$}  {}", f.status.as_str(), f.key)?,
        }
    }
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for f in &report.files {
        *counts.entry(f.status.as_str()).or_default() += 1;
    }
    let parts: Vec<String> = counts.iter().map(|(s, n)| format!("{n} {s}")).collect();
    let verdict = if report.ok { "OK" } else { "FAILED" };
    writeln!(
        out,
        "{verdict}: {} files ({})",
        report.files.len(),
        if parts.is_empty() {
            "none in the window".to_owned()
        } else {
            parts.join(", ")
        }
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;
    use trailwatch::audit::digest::{FileResult, FileStatus};

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        args: ValidateArgs,
    }

    const BASE: [&str; 7] = [
        "x",
        "--trail-arn",
        "arn:aws:cloudtrail:us-east-1:111122223333:trail/t",
        "--start-time",
        "2025-03-01T00:05:17Z",
        "--end-time",
        "2025-03-01T06:15:17+00:00",
    ];

    fn parse(extra: &[&str]) -> Result<ValidateArgs, clap::Error> {
        Cli::try_parse_from(BASE.iter().chain(extra)).map(|c| c.args)
    }

    #[test]
    fn local_mode_needs_its_files() {
        let a = parse(&[
            "--local",
            "d",
            "--metadata",
            "m",
            "--public-keys",
            "k",
            "--bucket-name",
            "b",
            "--format",
            "json",
        ])
        .unwrap();
        assert_eq!(a.format, Format::Json);
        assert_eq!(a.latest_delivery_time, None);
        assert!(parse(&["--local", "d", "--metadata", "m"]).is_err());
        assert!(parse(&[]).is_err(), "a source is required");
        assert!(parse(&["--bucket", "b", "--local", "d"]).is_err());
        assert!(parse(&["--bucket", "b"]).is_ok());
        assert!(parse(&["--bucket", "b", "--latest-delivery-time", "yesterday"]).is_err());
    }

    #[test]
    fn table_aligns_columns_and_summarises() {
        let report = DigestReport {
            ok: false,
            files: vec![
                FileResult {
                    key: "a".into(),
                    status: FileStatus::Valid,
                    detail: None,
                },
                FileResult {
                    key: "b".into(),
                    status: FileStatus::DigestSignatureInvalid,
                    detail: Some("why".into()),
                },
                FileResult {
                    key: "c".into(),
                    status: FileStatus::Valid,
                    detail: None,
                },
            ],
        };
        let mut out = Vec::new();
        write_table(&mut out, &report).unwrap();
        let text = String::from_utf8(out).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "STATUS                    KEY");
        assert_eq!(lines[1], "valid                     a");
        assert_eq!(lines[2], "digest-signature-invalid  b  (why)");
        assert_eq!(
            lines[4],
            "FAILED: 3 files (1 digest-signature-invalid, 2 valid)"
        );
    }
}

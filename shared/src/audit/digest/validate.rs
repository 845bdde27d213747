//! The validation rules: select the trail's digests in the window, verify each, check the
//! links between verified digests, find gaps in regular chains, then hash the log files
//! vouched for by digests that hold.
//!
//! Only digests whose signature verified speak about anything: about their predecessor
//! (link checks) and about log files. Fetching and hashing are bounded by
//! `max_in_flight`; gunzip + SHA-256 of log files runs on the blocking pool.

use std::collections::{BTreeMap, HashMap, HashSet};

use futures::{stream, StreamExt as _, TryStreamExt as _};
use time::{Duration, OffsetDateTime};

use super::document::{self, VerifiedDigest};
use super::key::{ChainId, DigestKey, DigestKind};
use super::public_keys::PublicKeySet;
use super::source::DigestSource;
use super::{DigestError, DigestReport, FileResult, FileStatus, ValidateRequest};

/// Digests are hourly: a missing digest spans about 1 h, so more than 90 min between a
/// missing digest and the surviving one before it means at least one more is gone.
const INTERIOR_GAP: Duration = Duration::minutes(90);
/// The newest digest of a chain is followed by another about an hour later.
const NEWEST_GAP: Duration = Duration::HOUR;

/// What fetching and verifying one digest found.
enum Outcome {
    Verified(Box<VerifiedDigest>),
    Invalid(String),
    /// Listed, but absent when read.
    Vanished,
}

struct Checked {
    dkey: DigestKey,
    outcome: Outcome,
}

type Entry = (FileStatus, Option<String>);

/// Validates the trail's digest chains and log files in the window.
///
/// # Errors
/// [`DigestError`] when the source fails to list or read (see
/// [`DigestError::is_retryable`]) or the window is inverted. Tampering, deletions and
/// corrupt objects are statuses in the report, not errors.
pub async fn validate<S: DigestSource>(
    source: &S,
    keys: &PublicKeySet,
    req: &ValidateRequest,
) -> Result<DigestReport, DigestError> {
    if req.end_time < req.start_time {
        return Err(DigestError::Window {
            start: req.start_time,
            end: req.end_time,
        });
    }
    let window_end = req
        .end_time
        .checked_add(Duration::HOUR)
        .unwrap_or(OffsetDateTime::new_utc(
            time::Date::MAX,
            time::Time::MIDNIGHT,
        ));
    let listed: HashSet<String> = source
        .list_keys(req.list_prefix.as_deref())
        .await
        .map_err(DigestError::List)?
        .into_iter()
        .collect();

    // every digest of the trail, any time: the newest-digest rule must see past the window
    let trail_digests: BTreeMap<&str, DigestKey> = listed
        .iter()
        .filter_map(|k| {
            DigestKey::parse(k)
                .filter(|d| d.is_of_trail(&req.trail))
                .map(|d| (k.as_str(), d))
        })
        .collect();
    let in_window: Vec<(&str, &DigestKey)> = trail_digests
        .iter()
        .filter(|(_, d)| d.time >= req.start_time && d.time <= window_end)
        .map(|(k, d)| (*k, d))
        .collect();

    // owned items: a stream closure over borrowed items makes the future !Send (rustc
    // cannot prove the higher-ranked lifetimes), and the Lambda runtime needs Send
    let items: Vec<(String, DigestKey)> = in_window
        .into_iter()
        .map(|(k, d)| (k.to_owned(), d.clone()))
        .collect();
    let checked: HashMap<String, Checked> = stream::iter(items)
        .map(|(key, dkey)| async move {
            let outcome = check_digest(source, keys, &req.bucket_name, &key, &dkey).await?;
            Ok::<_, DigestError>((key, Checked { dkey, outcome }))
        })
        .buffer_unordered(req.max_in_flight.get())
        .try_collect()
        .await?;

    let mut digests: BTreeMap<String, Entry> = BTreeMap::new();
    for (key, c) in &checked {
        let entry = match &c.outcome {
            Outcome::Verified(_) => (FileStatus::Valid, None),
            Outcome::Invalid(why) => (FileStatus::DigestSignatureInvalid, Some(why.clone())),
            Outcome::Vanished => (
                FileStatus::DigestMissing,
                Some("listed, but absent when read".to_owned()),
            ),
        };
        digests.insert(key.clone(), entry);
    }

    let missing = check_links(req, &listed, &checked, &mut digests);
    mark_gaps(req, &trail_digests, &checked, &missing, &mut digests);

    let logs = check_logs(source, req, &checked, &digests).await?;

    let mut files: BTreeMap<String, Entry> = logs;
    // a key reported as a digest keeps that status (a digest named as a log file is odd,
    // but each key is reported once)
    files.extend(digests);
    let files: Vec<FileResult> = files
        .into_iter()
        .map(|(key, (status, detail))| FileResult {
            key,
            status,
            detail,
        })
        .collect();
    let ok = files.iter().all(|f| f.status.is_valid());
    Ok(DigestReport { ok, files })
}

async fn check_digest<S: DigestSource>(
    source: &S,
    keys: &PublicKeySet,
    bucket: &str,
    key: &str,
    dkey: &DigestKey,
) -> Result<Outcome, DigestError> {
    let read = |source_err| DigestError::Read {
        key: key.to_owned(),
        source: source_err,
    };
    let Some(body) = source.get_object(key).await.map_err(read)? else {
        return Ok(Outcome::Vanished);
    };
    let Some(meta) = source.get_digest_metadata(key).await.map_err(read)? else {
        return Ok(Outcome::Vanished);
    };
    let is_backfill = dkey.chain.kind == DigestKind::Backfill;
    Ok(
        match document::verify_digest(bucket, key, is_backfill, &body, &meta, keys) {
            Ok(v) => Outcome::Verified(Box::new(v)),
            Err(why) => Outcome::Invalid(why),
        },
    )
}

/// Link checks from each verified digest to its predecessor. Returns the missing keys
/// (named by a verified successor, absent from the bucket).
fn check_links(
    req: &ValidateRequest,
    listed: &HashSet<String>,
    checked: &HashMap<String, Checked>,
    digests: &mut BTreeMap<String, Entry>,
) -> BTreeMap<String, Option<DigestKey>> {
    let mut missing = BTreeMap::new();
    // sorted successors: details are deterministic when several name the same predecessor
    let mut successors: Vec<(&str, &VerifiedDigest)> = checked
        .iter()
        .filter_map(|(k, c)| match &c.outcome {
            Outcome::Verified(v) => Some((k.as_str(), v.as_ref())),
            _ => None,
        })
        .collect();
    successors.sort_by_key(|(k, _)| *k);

    for (succ_key, succ) in successors {
        let Some(prev_key) = succ.doc.previous_digest_s3_object.as_deref() else {
            continue;
        };
        if succ.doc.previous_digest_s3_bucket.as_deref() != Some(req.bucket_name.as_str()) {
            continue; // another bucket: not ours to check
        }
        let prev_dkey = DigestKey::parse(prev_key);
        if prev_dkey.as_ref().is_some_and(|d| d.time < req.start_time) {
            continue; // before the window
        }
        match checked.get(prev_key).map(|c| &c.outcome) {
            Some(Outcome::Verified(prev)) => {
                let hash_ok = succ
                    .doc
                    .previous_digest_hash_value
                    .as_deref()
                    .is_some_and(|h| h.eq_ignore_ascii_case(&prev.sha256_hex));
                let sig_ok = succ
                    .doc
                    .previous_digest_signature
                    .as_deref()
                    .is_some_and(|s| s.trim().eq_ignore_ascii_case(prev.signature.trim()));
                if !(hash_ok && sig_ok) {
                    let what = match (hash_ok, sig_ok) {
                        (false, false) => "hash and signature",
                        (false, true) => "hash",
                        _ => "signature",
                    };
                    digests.insert(
                        prev_key.to_owned(),
                        (
                            FileStatus::DigestHashMismatch,
                            Some(format!(
                                "successor {succ_key} recorded a different {what} for it"
                            )),
                        ),
                    );
                }
            }
            // its own failure is already reported
            Some(Outcome::Invalid(_)) => {}
            // deleted while we read: already digest-missing; the gap rules still apply
            Some(Outcome::Vanished) => {
                missing.insert(prev_key.to_owned(), prev_dkey);
            }
            None if listed.contains(prev_key) => {
                // exists but is not a digest of this trail in the window: nothing to compare
            }
            None => {
                missing.insert(prev_key.to_owned(), prev_dkey);
                digests.insert(
                    prev_key.to_owned(),
                    (
                        FileStatus::DigestMissing,
                        Some(format!("named as previous digest by {succ_key}")),
                    ),
                );
            }
        }
    }
    missing
}

/// The interior and newest gap rules, regular chains only; a gap only downgrades `valid`.
fn mark_gaps(
    req: &ValidateRequest,
    trail_digests: &BTreeMap<&str, DigestKey>,
    checked: &HashMap<String, Checked>,
    missing: &BTreeMap<String, Option<DigestKey>>,
    digests: &mut BTreeMap<String, Entry>,
) {
    // present digests of the window per regular chain, oldest first
    let mut chains: BTreeMap<&ChainId, Vec<(OffsetDateTime, &str)>> = BTreeMap::new();
    for (key, c) in checked {
        if c.dkey.chain.kind == DigestKind::Regular && !matches!(c.outcome, Outcome::Vanished) {
            chains
                .entry(&c.dkey.chain)
                .or_default()
                .push((c.dkey.time, key));
        }
    }
    for v in chains.values_mut() {
        v.sort_unstable();
    }

    let mut gaps: Vec<(String, String)> = Vec::new();
    for (missing_key, dkey) in missing {
        let Some(dkey) = dkey else { continue };
        if dkey.chain.kind != DigestKind::Regular {
            continue;
        }
        let Some(present) = chains.get(&dkey.chain) else {
            continue;
        };
        let Some(&(t_prev, prev_key)) = present.iter().rev().find(|(t, _)| *t < dkey.time) else {
            continue;
        };
        if dkey.time - t_prev > INTERIOR_GAP {
            gaps.push((
                prev_key.to_owned(),
                format!(
                    "digests between it and the missing {missing_key} are gone ({} apart)",
                    dkey.time - t_prev
                ),
            ));
        }
    }

    if let Some(latest) = req.latest_delivery_time {
        // the chain's newest digest anywhere in the bucket, not just in the window
        let mut newest: BTreeMap<&ChainId, (OffsetDateTime, &str)> = BTreeMap::new();
        for (key, d) in trail_digests {
            if d.chain.kind != DigestKind::Regular {
                continue;
            }
            let vanished = checked
                .get(*key)
                .is_some_and(|c| matches!(c.outcome, Outcome::Vanished));
            if vanished {
                continue;
            }
            let slot = newest.entry(&d.chain).or_insert((d.time, key));
            if (d.time, *key) > *slot {
                *slot = (d.time, key);
            }
        }
        for (chain, (t, key)) in newest {
            if latest - t > NEWEST_GAP && checked.contains_key(key) {
                gaps.push((
                    key.to_owned(),
                    format!(
                        "newest digest of chain {chain}, but the trail delivered a digest at {latest} \
                         ({} later): the digests after it are gone",
                        latest - t
                    ),
                ));
            }
        }
    }

    for (key, why) in gaps {
        if let Some(entry) = digests.get_mut(&key) {
            if entry.0 == FileStatus::Valid {
                *entry = (FileStatus::DigestGap, Some(why));
            }
        }
    }
}

/// Checks every log file listed by a digest that is `valid` or `digest-gap`.
async fn check_logs<S: DigestSource>(
    source: &S,
    req: &ValidateRequest,
    checked: &HashMap<String, Checked>,
    digests: &BTreeMap<String, Entry>,
) -> Result<BTreeMap<String, Entry>, DigestError> {
    // log key -> expected (hash, algorithm) (several digests may list the same file);
    // owned for the same Send reason as the digest stream
    let mut expected: BTreeMap<String, Vec<(String, Option<String>)>> = BTreeMap::new();
    for (key, c) in checked {
        let Outcome::Verified(v) = &c.outcome else {
            continue;
        };
        let trusted = digests
            .get(key)
            .is_some_and(|(s, _)| matches!(s, FileStatus::Valid | FileStatus::DigestGap));
        if !trusted {
            continue;
        }
        for lf in &v.doc.log_files {
            if lf.s3_bucket == req.bucket_name {
                expected
                    .entry(lf.s3_object.clone())
                    .or_default()
                    .push((lf.hash_value.clone(), lf.hash_algorithm.clone()));
            }
        }
    }

    stream::iter(expected)
        .map(|(key, hashes)| async move {
            let entry = check_log(source, &key, &hashes).await?;
            Ok::<_, DigestError>((key, entry))
        })
        .buffer_unordered(req.max_in_flight.get())
        .try_collect()
        .await
}

async fn check_log<S: DigestSource>(
    source: &S,
    key: &str,
    hashes: &[(String, Option<String>)],
) -> Result<Entry, DigestError> {
    let body = source
        .get_object(key)
        .await
        .map_err(|source| DigestError::Read {
            key: key.to_owned(),
            source,
        })?;
    let Some(body) = body else {
        return Ok((FileStatus::LogMissing, None));
    };
    if let Some((_, Some(alg))) = hashes
        .iter()
        .find(|(_, a)| a.as_deref().is_some_and(|a| a != "SHA-256"))
    {
        return Ok((
            FileStatus::HashMismatch,
            Some(format!("unsupported hashAlgorithm {alg:?}")),
        ));
    }
    // gunzip + SHA-256 is CPU work: keep it off the async workers
    let actual = tokio::task::spawn_blocking(move || document::sha256_of_gunzipped(&body))
        .await
        .map_err(DigestError::Task)?;
    Ok(match actual {
        Err(e) => (
            FileStatus::HashMismatch,
            Some(format!("not readable gzip: {e}")),
        ),
        Ok(actual) => match hashes
            .iter()
            .find(|(h, _)| !h.eq_ignore_ascii_case(&actual))
        {
            None => (FileStatus::Valid, None),
            Some((h, _)) => (
                FileStatus::HashMismatch,
                Some(format!(
                    "uncompressed SHA-256 {actual}, digest recorded {h}"
                )),
            ),
        },
    })
}

#[cfg(test)]
mod tests {
    use std::io::Write as _;
    use std::num::NonZeroUsize;

    use flate2::{write::GzEncoder, Compression};
    use rsa::pkcs1::EncodeRsaPublicKey;
    use rsa::{Pkcs1v15Sign, RsaPrivateKey};
    use serde_json::json;
    use sha2::{Digest as _, Sha256};
    use time::macros::datetime;

    use super::super::public_keys::tests::test_key;
    use super::super::source::{DigestMetadata, MemDigestSource, SourceError};
    use super::super::TrailArn;
    use super::*;

    const BUCKET: &str = "trail-bucket";
    const FP: &str = "0123456789abcdef0123456789abcdef";

    fn gzip(data: &[u8]) -> Vec<u8> {
        let mut e = GzEncoder::new(Vec::new(), Compression::default());
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    /// Chain layout: `prefix` ("" or ending in "/"), optional org id, account, region.
    struct Chain<'a> {
        prefix: &'a str,
        org: Option<&'a str>,
        account: &'a str,
        region: &'a str,
        backfill: bool,
    }

    impl Chain<'_> {
        fn base(&self) -> String {
            let org = self.org.map(|o| format!("{o}/")).unwrap_or_default();
            format!("{}AWSLogs/{org}{}", self.prefix, self.account)
        }
        fn digest_key(&self, t: OffsetDateTime, trail: &str) -> String {
            let (y, m, d) = (t.year(), u8::from(t.month()), t.day());
            let stamp = format!(
                "{y:04}{m:02}{d:02}T{:02}{:02}{:02}Z",
                t.hour(),
                t.minute(),
                t.second()
            );
            let bf = if self.backfill { "_backfill" } else { "" };
            format!(
                "{}/CloudTrail-Digest/{r}/{y:04}/{m:02}/{d:02}/{a}_CloudTrail-Digest_{r}_{trail}_us-east-1_{stamp}{bf}.json.gz",
                self.base(),
                r = self.region,
                a = self.account
            )
        }
    }

    struct Fixture {
        src: MemDigestSource,
        key: RsaPrivateKey,
        keys: PublicKeySet,
    }

    impl Fixture {
        fn new() -> Self {
            let key = test_key(7);
            use base64::Engine as _;
            let der = key.to_public_key().to_pkcs1_der().unwrap();
            let body = json!({"PublicKeyList": [{
                "Value": base64::engine::general_purpose::STANDARD.encode(der.as_bytes()),
                "Fingerprint": FP }]});
            let keys =
                PublicKeySet::from_list_public_keys_json(body.to_string().as_bytes()).unwrap();
            Self {
                src: MemDigestSource::new(),
                key,
                keys,
            }
        }

        /// `n` hourly digests from `t0`, each listing one log file; returns (digest, log) keys.
        fn chain(&mut self, c: &Chain<'_>, t0: OffsetDateTime, n: usize) -> Vec<(String, String)> {
            let mut prev: Option<(String, String, String)> = None; // key, sha256, signature
            let mut out = Vec::new();
            for i in 0..n {
                let t = t0 + Duration::hours(i as i64);
                let key = c.digest_key(t, "trail");
                let log_key = format!(
                    "{}/CloudTrail/{}/log-{}-{i}{}.json.gz",
                    c.base(),
                    c.region,
                    t.unix_timestamp(),
                    if c.backfill { "-late" } else { "" }
                );
                let log_raw = format!("{{\"Records\":[{{\"eventID\":\"{key}\"}}]}}");
                self.src.put(
                    log_key.clone(),
                    gzip(log_raw.as_bytes()),
                    DigestMetadata::default(),
                );
                let end = t
                    .format(&time::format_description::well_known::Rfc3339)
                    .unwrap();
                let doc = json!({
                    "digestEndTime": end,
                    "digestS3Bucket": BUCKET,
                    "digestS3Object": key,
                    "digestPublicKeyFingerprint": FP,
                    "previousDigestS3Bucket": prev.as_ref().map(|_| BUCKET),
                    "previousDigestS3Object": prev.as_ref().map(|p| p.0.clone()),
                    "previousDigestHashValue": prev.as_ref().map(|p| p.1.clone()),
                    "previousDigestHashAlgorithm": prev.as_ref().map(|_| "SHA-256"),
                    "previousDigestSignature": prev.as_ref().map(|p| p.2.clone()),
                    "logFiles": [{ "s3Bucket": BUCKET, "s3Object": log_key,
                        "hashValue": hex::encode(Sha256::digest(log_raw.as_bytes())), "hashAlgorithm": "SHA-256" }]
                });
                let raw = doc.to_string();
                let raw_hash = hex::encode(Sha256::digest(raw.as_bytes()));
                let prev_sig = prev.as_ref().map_or("null".to_owned(), |p| p.2.clone());
                let signing = format!("{end}\n{BUCKET}/{key}\n{raw_hash}\n{prev_sig}");
                let sig = self
                    .key
                    .sign(
                        Pkcs1v15Sign::new::<Sha256>(),
                        &Sha256::digest(signing.as_bytes()),
                    )
                    .unwrap();
                let sig = hex::encode(sig);
                let meta = DigestMetadata {
                    signature: Some(sig.clone()),
                    signature_algorithm: Some("SHA256withRSA".into()),
                    backfill_generation_timestamp: c.backfill.then(|| end.clone()),
                };
                self.src.put(key.clone(), gzip(raw.as_bytes()), meta);
                out.push((key.clone(), log_key));
                prev = Some((key, raw_hash, sig));
            }
            out
        }

        async fn run(
            &self,
            start: OffsetDateTime,
            end: OffsetDateTime,
            latest: Option<OffsetDateTime>,
        ) -> DigestReport {
            validate(&self.src, &self.keys, &request(start, end, latest))
                .await
                .unwrap()
        }
    }

    fn request(
        start: OffsetDateTime,
        end: OffsetDateTime,
        latest: Option<OffsetDateTime>,
    ) -> ValidateRequest {
        ValidateRequest {
            bucket_name: BUCKET.into(),
            trail: TrailArn::parse("arn:aws:cloudtrail:us-east-1:111122223333:trail/trail")
                .unwrap(),
            start_time: start,
            end_time: end,
            latest_delivery_time: latest,
            list_prefix: None,
            max_in_flight: NonZeroUsize::new(3).unwrap(),
        }
    }

    fn status_of<'r>(r: &'r DigestReport, key: &str) -> Option<&'r str> {
        r.files
            .iter()
            .find(|f| f.key == key)
            .map(|f| f.status.as_str())
    }

    const PLAIN: Chain<'static> = Chain {
        prefix: "",
        org: None,
        account: "111122223333",
        region: "us-east-1",
        backfill: false,
    };
    const T0: OffsetDateTime = datetime!(2025-03-01 01:05:17 UTC);

    #[tokio::test]
    async fn window_is_start_inclusive_to_end_plus_one_hour_inclusive() {
        let mut f = Fixture::new();
        let ks = f.chain(&PLAIN, T0, 5);
        // window [T0+1h, T0+2h] covers digests T0+1h ..= T0+3h exactly at both edges
        let r = f
            .run(T0 + Duration::HOUR, T0 + Duration::hours(2), None)
            .await;
        let digests: Vec<&str> = r
            .files
            .iter()
            .filter(|x| x.key.contains("Digest"))
            .map(|x| x.key.as_str())
            .collect();
        assert_eq!(
            digests,
            [ks[1].0.as_str(), ks[2].0.as_str(), ks[3].0.as_str()]
        );
        assert_eq!(r.files.len(), 6, "three digests and their three logs");
        assert!(r.ok);
        // one second later on both sides drops both edge digests
        let r = f
            .run(
                T0 + Duration::HOUR + Duration::SECOND,
                T0 + Duration::hours(2) - Duration::SECOND,
                None,
            )
            .await;
        assert_eq!(status_of(&r, &ks[1].0), None);
        assert_eq!(status_of(&r, &ks[3].0), None);
        assert_eq!(status_of(&r, &ks[2].0), Some("valid"));
        // the predecessor of the first digest in the window is before the start: not checked
        f.src.remove(&ks[0].0);
        let r = f
            .run(T0 + Duration::HOUR, T0 + Duration::hours(2), None)
            .await;
        assert!(r.ok, "{r:?}");
        let inverted = validate(&f.src, &f.keys, &request(T0, T0 - Duration::SECOND, None)).await;
        assert!(matches!(inverted, Err(DigestError::Window { .. })));
    }

    #[tokio::test]
    async fn chains_are_per_prefix_org_account_region_and_kind() {
        let mut f = Fixture::new();
        let a = Chain {
            prefix: "audit/ct/",
            org: Some("o-a1b2c3d4e5"),
            ..PLAIN
        };
        let b = Chain {
            prefix: "audit/ct/",
            org: Some("o-a1b2c3d4e5"),
            account: "444455556666",
            ..PLAIN
        };
        let c = Chain {
            prefix: "audit/ct/AWSLogs/",
            ..PLAIN
        }; // prefix itself contains AWSLogs
        let d = Chain {
            region: "eu-west-1",
            ..PLAIN
        };
        let bf = Chain {
            backfill: true,
            ..PLAIN
        };
        let ka = f.chain(&a, T0, 4);
        let kb = f.chain(&b, T0 + Duration::seconds(12), 4);
        let kc = f.chain(&c, T0 + Duration::seconds(30), 4);
        let kd = f.chain(&d, T0 + Duration::minutes(2), 4);
        let kbf = f.chain(&bf, T0 + Duration::minutes(20), 3);
        let latest = Some(T0 + Duration::hours(3) + Duration::minutes(3));
        let end = T0 + Duration::hours(3);
        let r = f.run(T0, end, latest).await;
        assert!(r.ok, "{r:#?}");
        assert_eq!(r.files.len(), 2 * (4 * 4 + 3));

        // delete b's middle digest and a's two digests 1-2: only those chains are affected
        f.src.remove(&kb[2].0);
        f.src.remove(&ka[1].0);
        f.src.remove(&ka[2].0);
        // and the backfill chain's middle digest: backfill chains get no gap rules
        f.src.remove(&kbf[1].0);
        let r = f.run(T0, end, latest).await;
        assert_eq!(status_of(&r, &kb[2].0), Some("digest-missing"));
        assert_eq!(status_of(&r, &kb[1].0), Some("valid"));
        assert_eq!(
            status_of(&r, &kb[2].1),
            None,
            "logs of a missing digest are not listed"
        );
        assert_eq!(status_of(&r, &ka[2].0), Some("digest-missing"));
        assert_eq!(status_of(&r, &ka[1].0), None, "nothing names it");
        assert_eq!(status_of(&r, &ka[0].0), Some("digest-gap"));
        assert_eq!(
            status_of(&r, &ka[0].1),
            Some("valid"),
            "a gap digest still vouches for its logs"
        );
        assert_eq!(status_of(&r, &kbf[1].0), Some("digest-missing"));
        assert_eq!(status_of(&r, &kbf[0].0), Some("valid"));
        for k in kc.iter().chain(&kd) {
            assert_eq!(status_of(&r, &k.0), Some("valid"));
        }
        let bad: Vec<&str> = r
            .files
            .iter()
            .filter(|x| !x.status.is_valid())
            .map(|x| x.key.as_str())
            .collect();
        assert_eq!(bad.len(), 4, "{bad:?}");
        assert!(!r.ok);
    }

    #[tokio::test]
    async fn newest_rule_uses_latest_delivery_time_on_regular_chains() {
        let mut f = Fixture::new();
        let ks = f.chain(&PLAIN, T0, 3);
        let kbf = f.chain(
            &Chain {
                backfill: true,
                ..PLAIN
            },
            T0,
            2,
        );
        let end = T0 + Duration::hours(2);
        let at = |d: Duration| f.run(T0, end, Some(T0 + Duration::hours(2) + d));
        let r = at(Duration::HOUR).await;
        assert!(r.ok, "exactly 1 h later is still fine: {r:#?}");
        let r = at(Duration::HOUR + Duration::SECOND).await;
        assert_eq!(status_of(&r, &ks[2].0), Some("digest-gap"));
        assert_eq!(status_of(&r, &kbf[1].0), Some("valid"));
        assert_eq!(r.files.iter().filter(|x| !x.status.is_valid()).count(), 1);
        // a later digest outside the window is the chain's newest: nothing in the window is a gap
        let r = f
            .run(T0, T0, Some(T0 + Duration::hours(2) + Duration::minutes(5)))
            .await;
        assert!(r.ok, "{r:#?}");
    }

    #[tokio::test]
    async fn corrupt_moved_and_other_trail_digests() {
        let mut f = Fixture::new();
        let ks = f.chain(&PLAIN, T0, 3);
        // digest 1 replaced by garbage: signature-invalid, its log unlisted, no panic
        let meta = f.src.get_digest_metadata(&ks[1].0).await.unwrap().unwrap();
        f.src
            .put(ks[1].0.clone(), &b"\x1f\x8b garbage"[..], meta.clone());
        // a valid digest copied to another trail's key is ignored; copied to a key of this
        // trail (another region) it names the wrong location
        let body = f.src.get_object(&ks[0].0).await.unwrap().unwrap();
        let other_trail = PLAIN.digest_key(T0, "other-trail");
        f.src.put(other_trail.clone(), body.clone(), meta.clone());
        let moved = Chain {
            region: "eu-west-1",
            ..PLAIN
        }
        .digest_key(T0, "trail");
        f.src.put(moved.clone(), body, meta);
        let r = f.run(T0, T0 + Duration::hours(2), None).await;
        assert_eq!(status_of(&r, &ks[1].0), Some("digest-signature-invalid"));
        assert_eq!(status_of(&r, &ks[1].1), None);
        assert_eq!(status_of(&r, &ks[0].0), Some("valid"));
        assert_eq!(status_of(&r, &ks[2].0), Some("valid"));
        assert_eq!(status_of(&r, &other_trail), None);
        let m = r.files.iter().find(|x| x.key == moved).unwrap();
        assert_eq!(m.status, FileStatus::DigestSignatureInvalid);
        assert!(m.detail.as_deref().unwrap().contains("location"), "{m:?}");
        // serialised statuses are kebab-case
        let j = serde_json::to_value(&r).unwrap();
        assert!(j["files"]
            .as_array()
            .unwrap()
            .iter()
            .any(|x| x["status"] == "digest-signature-invalid"));
    }

    /// Lists `ghost` as well as the real objects: an object deleted between list and read.
    struct Ghost {
        inner: MemDigestSource,
        ghost: String,
    }
    impl DigestSource for Ghost {
        async fn list_keys(&self, prefix: Option<&str>) -> Result<Vec<String>, SourceError> {
            let mut keys = self.inner.list_keys(prefix).await?;
            keys.push(self.ghost.clone());
            Ok(keys)
        }
        async fn get_object(&self, key: &str) -> Result<Option<bytes::Bytes>, SourceError> {
            self.inner.get_object(key).await
        }
        async fn get_digest_metadata(
            &self,
            key: &str,
        ) -> Result<Option<DigestMetadata>, SourceError> {
            self.inner.get_digest_metadata(key).await
        }
    }

    #[tokio::test]
    async fn digest_deleted_while_reading_is_missing_and_feeds_the_gap_rule() {
        let mut f = Fixture::new();
        let ks = f.chain(&PLAIN, T0, 4);
        f.src.remove(&ks[1].0);
        f.src.remove(&ks[2].0);
        let src = Ghost {
            inner: f.src.clone(),
            ghost: ks[2].0.clone(),
        };
        let r = validate(&src, &f.keys, &request(T0, T0 + Duration::hours(3), None))
            .await
            .unwrap();
        assert_eq!(status_of(&r, &ks[2].0), Some("digest-missing"));
        assert_eq!(status_of(&r, &ks[1].0), None);
        assert_eq!(status_of(&r, &ks[0].0), Some("digest-gap"));
        assert_eq!(status_of(&r, &ks[3].0), Some("valid"));
    }

    struct Failing(bool);
    impl DigestSource for Failing {
        async fn list_keys(&self, prefix: Option<&str>) -> Result<Vec<String>, SourceError> {
            Err(SourceError::Service {
                operation: "ListObjectsV2",
                key: prefix.unwrap_or_default().to_owned(),
                transient: self.0,
                source: "throttled".into(),
            })
        }
        async fn get_object(&self, _: &str) -> Result<Option<bytes::Bytes>, SourceError> {
            Ok(None)
        }
        async fn get_digest_metadata(
            &self,
            _: &str,
        ) -> Result<Option<DigestMetadata>, SourceError> {
            Ok(None)
        }
    }

    #[tokio::test]
    async fn source_failures_are_errors_classified_by_retryability() {
        let keys = PublicKeySet::default();
        let req = request(T0, T0, None);
        let e = validate(&Failing(true), &keys, &req).await.unwrap_err();
        assert!(e.is_retryable());
        let e = validate(&Failing(false), &keys, &req).await.unwrap_err();
        assert!(!e.is_retryable());
    }

    #[test]
    fn validate_future_is_send() {
        fn assert_send<T: Send>(_: T) {}
        let src = MemDigestSource::new();
        let keys = PublicKeySet::default();
        let req = request(T0, T0, None);
        assert_send(validate(&src, &keys, &req));
    }
}

//! Digest files (CloudTrail log file integrity validation). A digest is attacker-reachable:
//! anyone who can write to the trail bucket can plant one, and the validator must report it
//! as a status, never crash. The first byte picks the entry point:
//! 0: the document JSON and its signing string;
//! 1: `verify_digest` over the gzipped input (gzip, JSON, metadata and location checks);
//! 2: a `ListPublicKeys` body and DER key decoding;
//! 3: the whole validator over an in-memory bucket holding the input as a digest and as
//!    the log file it names.
#![no_main]

use flate2::write::GzEncoder;
use flate2::Compression;
use libfuzzer_sys::fuzz_target;
use std::io::Write;
use std::num::NonZeroUsize;
use std::sync::OnceLock;
use time::macros::datetime;
use trailwatch::audit::digest::document::{
    gunzip_all, sha256_of_gunzipped, signing_string, verify_digest, DigestDocument,
};
use trailwatch::audit::digest::public_keys::decode_der;
use trailwatch::audit::digest::{
    validate, DigestMetadata, MemDigestSource, PublicKeySet, TrailArn, ValidateRequest,
};

const BUCKET: &str = "trail-bucket";
const DIGEST_KEY: &str = "AWSLogs/111122223333/CloudTrail-Digest/us-east-1/2026/11/23/\
111122223333_CloudTrail-Digest_us-east-1_main_us-east-1_20261123T120000Z.json.gz";
const LOG_KEY: &str = "AWSLogs/111122223333/CloudTrail/us-east-1/2026/11/23/\
111122223333_CloudTrail_us-east-1_20261123T1155Z_abcdefghijklmnop.json.gz";

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut enc = GzEncoder::new(Vec::new(), Compression::fast());
    // writing into a Vec cannot fail
    let _ = enc.write_all(data);
    enc.finish().unwrap_or_default()
}

fn meta() -> DigestMetadata {
    DigestMetadata {
        signature: Some("00ff".repeat(64)),
        signature_algorithm: Some("SHA256withRSA".to_owned()),
        backfill_generation_timestamp: None,
    }
}

fn runtime() -> &'static tokio::runtime::Runtime {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(
        || match tokio::runtime::Builder::new_current_thread().build() {
            Ok(rt) => rt,
            Err(e) => panic!("no tokio runtime: {e}"),
        },
    )
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    match mode % 4 {
        0 => {
            if let Ok(doc) = serde_json::from_slice::<DigestDocument>(rest) {
                let s = signing_string(&doc, "00");
                assert!(s.starts_with(&doc.digest_end_time));
            }
        }
        1 => {
            let gz = gzip(rest);
            let r = verify_digest(
                BUCKET,
                DIGEST_KEY,
                false,
                &gz,
                &meta(),
                &PublicKeySet::default(),
            );
            // no key is known, so nothing can verify
            assert!(r.is_err());
            // our own gzip round-trips (the limit is larger than any fuzz input)
            assert_eq!(gunzip_all(&gz, 1 << 24).ok().as_deref(), Some(rest));
            let _ = sha256_of_gunzipped(rest);
        }
        2 => {
            if let Ok(set) = PublicKeySet::from_list_public_keys_json(rest) {
                let _ = set.find("00");
            }
            let _ = decode_der(rest);
        }
        _ => {
            let mut bucket = MemDigestSource::new();
            let gz = gzip(rest);
            bucket.put(DIGEST_KEY, gz.clone(), meta());
            bucket.put(LOG_KEY, gz, DigestMetadata::default());
            let Ok(trail) = TrailArn::parse("arn:aws:cloudtrail:us-east-1:111122223333:trail/main")
            else {
                panic!("fixed trail ARN does not parse");
            };
            let req = ValidateRequest {
                bucket_name: BUCKET.to_owned(),
                trail,
                start_time: datetime!(2026-11-23 00:00 UTC),
                end_time: datetime!(2026-11-23 23:00 UTC),
                latest_delivery_time: Some(datetime!(2026-11-23 12:00 UTC)),
                list_prefix: None,
                max_in_flight: NonZeroUsize::MIN,
            };
            let report = runtime().block_on(validate(&bucket, &PublicKeySet::default(), &req));
            // the bucket cannot fail, so tampering is a status, never an error
            assert!(report.is_ok(), "{report:?}");
        }
    }
});

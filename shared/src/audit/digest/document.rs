//! One digest file: gunzip, parse, the data signing string and its RSA signature check;
//! and the log file hash every digest entry is compared with.
//!
//! Pure functions over bytes. Bad input is a `Err(String)` detail the validator turns into
//! a status; nothing here panics or does I/O.

use std::io::{self, Read};

use flate2::read::MultiGzDecoder;
use rsa::{Pkcs1v15Sign, RsaPublicKey};
use serde::Deserialize;
use sha2::{Digest as _, Sha256};

use super::public_keys::PublicKeySet;
use super::source::DigestMetadata;

/// Uncompressed digests are a few kB per log file listed; anything far larger is not a
/// CloudTrail digest, and reading it whole must not exhaust memory (gzip bombs).
const MAX_DIGEST_BYTES: u64 = 64 * 1024 * 1024;

/// The fields of a digest the validator uses (others are ignored).
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DigestDocument {
    /// `digestEndTime`, exactly as written (it enters the signing string verbatim).
    pub digest_end_time: String,
    /// Bucket the digest was delivered to.
    pub digest_s3_bucket: String,
    /// Key the digest was delivered to.
    pub digest_s3_object: String,
    /// MD5 fingerprint of the public key that verifies it.
    pub digest_public_key_fingerprint: String,
    /// Bucket of the previous digest in the chain (null for a starting digest).
    #[serde(default)]
    pub previous_digest_s3_bucket: Option<String>,
    /// Key of the previous digest in the chain (null for a starting digest).
    #[serde(default)]
    pub previous_digest_s3_object: Option<String>,
    /// Lowercase hex SHA-256 of the previous digest's uncompressed bytes.
    #[serde(default)]
    pub previous_digest_hash_value: Option<String>,
    /// The previous digest's hex signature.
    #[serde(default)]
    pub previous_digest_signature: Option<String>,
    /// The log files this digest vouches for (`null` treated as none).
    #[serde(default, deserialize_with = "null_as_empty")]
    pub log_files: Vec<LogFileEntry>,
}

/// One `logFiles` entry.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LogFileEntry {
    /// Bucket holding the log file.
    pub s3_bucket: String,
    /// Key of the log file.
    pub s3_object: String,
    /// Lowercase hex hash of the uncompressed log file.
    pub hash_value: String,
    /// `SHA-256`.
    #[serde(default)]
    pub hash_algorithm: Option<String>,
}

fn null_as_empty<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<LogFileEntry>, D::Error> {
    Ok(Option::<Vec<LogFileEntry>>::deserialize(d)?.unwrap_or_default())
}

/// A digest whose signature verified.
#[derive(Debug, Clone)]
pub struct VerifiedDigest {
    /// The parsed document.
    pub doc: DigestDocument,
    /// Lowercase hex SHA-256 of the uncompressed bytes (what a successor records).
    pub sha256_hex: String,
    /// The metadata signature (what a successor records as `previousDigestSignature`).
    pub signature: String,
}

/// The data signing string: `digestEndTime \n bucket/key \n hex(sha256(raw)) \n
/// previousDigestSignature` (`null` for a starting digest), no trailing newline.
pub fn signing_string(doc: &DigestDocument, raw_sha256_hex: &str) -> String {
    format!(
        "{}\n{}/{}\n{}\n{}",
        doc.digest_end_time,
        doc.digest_s3_bucket,
        doc.digest_s3_object,
        raw_sha256_hex,
        doc.previous_digest_signature.as_deref().unwrap_or("null")
    )
}

/// RSASSA-PKCS1-v1_5 with SHA-256 (`SHA256withRSA`) over `message`.
///
/// # Errors
/// A detail when the signature is not hex or does not verify.
pub fn verify_sha256_with_rsa(
    key: &RsaPublicKey,
    message: &[u8],
    signature_hex: &str,
) -> Result<(), String> {
    let sig = hex::decode(signature_hex.trim())
        .map_err(|e| format!("signature metadata is not hex: {e}"))?;
    let hashed = Sha256::digest(message);
    key.verify(Pkcs1v15Sign::new::<Sha256>(), &hashed, &sig)
        .map_err(|_| "signature does not verify".to_owned())
}

/// Checks one digest object where it was found (`bucket`/`key`) and returns the verified
/// document, or why it is `digest-signature-invalid`.
///
/// # Errors
/// A human-readable reason for any failed step (gzip, JSON, metadata, location, key,
/// signature).
pub fn verify_digest(
    bucket: &str,
    key: &str,
    is_backfill: bool,
    gz: &[u8],
    meta: &DigestMetadata,
    keys: &PublicKeySet,
) -> Result<VerifiedDigest, String> {
    let raw = gunzip_all(gz, MAX_DIGEST_BYTES)
        .map_err(|e| format!("digest is not readable gzip: {e}"))?;
    let doc: DigestDocument = serde_json::from_slice(&raw)
        .map_err(|e| format!("digest is not a digest document: {e}"))?;
    let signature = meta.signature.as_deref().ok_or("no signature metadata")?;
    match meta.signature_algorithm.as_deref() {
        Some("SHA256withRSA") => {}
        Some(other) => {
            return Err(format!(
                "unsupported signature-algorithm metadata {other:?}"
            ))
        }
        None => return Err("no signature-algorithm metadata".to_owned()),
    }
    if is_backfill && meta.backfill_generation_timestamp.is_none() {
        return Err("backfill digest without backfill-generation-timestamp metadata".to_owned());
    }
    if doc.digest_s3_bucket != bucket || doc.digest_s3_object != key {
        return Err(format!(
            "digest names {}/{} as its location, found at {bucket}/{key}",
            doc.digest_s3_bucket, doc.digest_s3_object
        ));
    }
    let entry = keys
        .find(&doc.digest_public_key_fingerprint)
        .ok_or_else(|| {
            format!(
                "no public key with fingerprint {}",
                doc.digest_public_key_fingerprint
            )
        })?;
    let pubkey = entry
        .key
        .as_ref()
        .map_err(|e| format!("public key {}: {e}", entry.fingerprint))?;
    let sha256_hex = hex::encode(Sha256::digest(&raw));
    verify_sha256_with_rsa(
        pubkey,
        signing_string(&doc, &sha256_hex).as_bytes(),
        signature,
    )?;
    Ok(VerifiedDigest {
        doc,
        sha256_hex,
        signature: signature.to_owned(),
    })
}

/// Gunzips every member of `gz` (RFC 1952 2.2) into memory, refusing more than `limit` bytes.
///
/// # Errors
/// Corrupt gzip, or output larger than `limit`.
pub fn gunzip_all(gz: &[u8], limit: u64) -> io::Result<Vec<u8>> {
    let mut out = Vec::new();
    MultiGzDecoder::new(gz)
        .take(limit.saturating_add(1))
        .read_to_end(&mut out)?;
    if out.len() as u64 > limit {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("more than {limit} bytes uncompressed"),
        ));
    }
    Ok(out)
}

/// Lowercase hex SHA-256 of all gzip members of `gz`, concatenated, streamed through the
/// hasher (log files can be large; nothing is buffered whole). Extra members appended to
/// a delivered file change the hash: readers see their records too.
///
/// # Errors
/// Corrupt gzip stream.
pub fn sha256_of_gunzipped(gz: &[u8]) -> io::Result<String> {
    let mut hasher = Sha256::new();
    io::copy(&mut MultiGzDecoder::new(gz), &mut hasher)?;
    Ok(hex::encode(hasher.finalize()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use flate2::{write::GzEncoder, Compression};
    use std::io::Write;

    fn gzip(data: &[u8]) -> Vec<u8> {
        let mut e = GzEncoder::new(Vec::new(), Compression::default());
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    fn doc(prev_sig: Option<&str>) -> DigestDocument {
        DigestDocument {
            digest_end_time: "2025-03-01T01:07:42Z".into(),
            digest_s3_bucket: "example-trail-bucket".into(),
            digest_s3_object: "AWSLogs/111122223333/CloudTrail-Digest/eu-west-1/2025/03/01/111122223333_CloudTrail-Digest_eu-west-1_management-trail_us-east-1_20250301T010742Z.json.gz".into(),
            digest_public_key_fingerprint: "3cd56529e33d049e98121de03a32d684".into(),
            previous_digest_s3_bucket: None,
            previous_digest_s3_object: None,
            previous_digest_hash_value: None,
            previous_digest_signature: prev_sig.map(str::to_owned),
            log_files: vec![],
        }
    }

    #[test]
    fn signing_string_matches_the_readme_example() {
        let s = signing_string(
            &doc(None),
            "c3fa6540835187903ec2a2c08b29ca759ded3a0b00e05a010d70046e8d938616",
        );
        let expected = "2025-03-01T01:07:42Z\n\
            example-trail-bucket/AWSLogs/111122223333/CloudTrail-Digest/eu-west-1/2025/03/01/111122223333_CloudTrail-Digest_eu-west-1_management-trail_us-east-1_20250301T010742Z.json.gz\n\
            c3fa6540835187903ec2a2c08b29ca759ded3a0b00e05a010d70046e8d938616\n\
            null";
        assert_eq!(s, expected);
        assert!(!s.ends_with('\n'));
        let chained = signing_string(&doc(Some("6e2e33")), "00");
        assert!(chained.ends_with("\n00\n6e2e33"), "{chained}");
    }

    #[test]
    fn multi_member_gzip_hashes_every_member() {
        let one = gzip(b"{\"Records\":[]}");
        let mut two = one.clone();
        two.extend_from_slice(&gzip(b"{\"Records\":[{\"forged\":1}]}"));
        let h1 = sha256_of_gunzipped(&one).unwrap();
        assert_eq!(h1, hex::encode(Sha256::digest(b"{\"Records\":[]}")));
        let h2 = sha256_of_gunzipped(&two).unwrap();
        assert_eq!(
            h2,
            hex::encode(Sha256::digest(
                b"{\"Records\":[]}{\"Records\":[{\"forged\":1}]}"
            ))
        );
        assert_eq!(
            gunzip_all(&two, 1 << 20).unwrap(),
            b"{\"Records\":[]}{\"Records\":[{\"forged\":1}]}"
        );
    }

    #[test]
    fn corrupt_gzip_is_an_error_not_a_panic() {
        let mut g = gzip(b"hello world, hello world");
        let n = g.len();
        g[n / 2] ^= 0xff;
        // the gzip trailer's CRC-32 catches any change that still inflates
        assert!(sha256_of_gunzipped(&g).is_err());
        assert!(sha256_of_gunzipped(b"not gzip at all").is_err());
        let mut trailing = gzip(b"x");
        trailing.extend_from_slice(b"garbage");
        assert!(sha256_of_gunzipped(&trailing).is_err());
    }

    #[test]
    fn gunzip_limit_is_enforced() {
        let g = gzip(&[b'a'; 1000]);
        assert_eq!(gunzip_all(&g, 1000).unwrap().len(), 1000);
        assert!(gunzip_all(&g, 999).is_err());
    }
}

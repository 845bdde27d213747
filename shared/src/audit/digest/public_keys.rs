//! CloudTrail public keys (`ListPublicKeys`): parsing and selection by fingerprint.
//!
//! `Value` is DER: PKCS#1 `RSAPublicKey` (what the API documents) or X.509
//! `SubjectPublicKeyInfo` (seen in AWS examples); both are accepted. A key that cannot
//! be decoded stays listed with the reason, so the digests naming it fail with a clear
//! detail instead of the whole run failing. Validity times are informational: backfill
//! digests are signed with the key current when they were generated.

use rsa::pkcs1::DecodeRsaPublicKey;
use rsa::pkcs8::DecodePublicKey;
use rsa::RsaPublicKey;
use serde::Deserialize;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use base64::Engine as _;

/// One entry of `PublicKeyList`.
#[derive(Debug, Clone)]
pub struct PublicKey {
    /// Lowercase hex MD5 of the DER bytes as listed (`digestPublicKeyFingerprint`).
    pub fingerprint: String,
    /// The decoded key, or why it could not be decoded.
    pub key: Result<RsaPublicKey, String>,
    /// `ValidityStartTime`, when present and parseable.
    pub valid_from: Option<OffsetDateTime>,
    /// `ValidityEndTime`, when present and parseable.
    pub valid_until: Option<OffsetDateTime>,
}

/// The keys available for verification.
#[derive(Debug, Clone, Default)]
pub struct PublicKeySet {
    keys: Vec<PublicKey>,
}

/// The public key list as a whole cannot be read.
#[derive(Debug, thiserror::Error)]
#[error("public key list is not a ListPublicKeys response")]
pub struct PublicKeysError(#[source] serde_json::Error);

#[derive(Deserialize)]
struct Wire {
    #[serde(rename = "PublicKeyList", default)]
    list: Vec<WireKey>,
}

#[derive(Deserialize)]
struct WireKey {
    #[serde(rename = "Value", default)]
    value: Option<String>,
    #[serde(rename = "Fingerprint", default)]
    fingerprint: Option<String>,
    #[serde(rename = "ValidityStartTime", default)]
    start: Option<serde_json::Value>,
    #[serde(rename = "ValidityEndTime", default)]
    end: Option<serde_json::Value>,
}

impl PublicKeySet {
    /// Parses a `ListPublicKeys` response body (`{"PublicKeyList": [..]}`).
    ///
    /// # Errors
    /// [`PublicKeysError`] when the body is not JSON of that shape. Individual keys that
    /// cannot be decoded do not fail the parse (see [`PublicKey::key`]).
    pub fn from_list_public_keys_json(body: &[u8]) -> Result<Self, PublicKeysError> {
        let wire: Wire = serde_json::from_slice(body).map_err(PublicKeysError)?;
        let keys = wire
            .list
            .into_iter()
            .filter_map(|w| {
                let fingerprint = w.fingerprint?.to_ascii_lowercase();
                let key = match w.value {
                    Some(v) => decode_der_base64(&v),
                    None => Err("no Value".to_owned()),
                };
                Some(PublicKey {
                    fingerprint,
                    key,
                    valid_from: w.start.as_ref().and_then(parse_validity_time),
                    valid_until: w.end.as_ref().and_then(parse_validity_time),
                })
            })
            .collect();
        Ok(Self { keys })
    }

    /// Builds a set from already decoded keys (the S3 mode gets them from the SDK).
    pub fn from_keys(keys: Vec<PublicKey>) -> Self {
        Self { keys }
    }

    /// The key whose fingerprint equals `fingerprint` (case-insensitive).
    pub fn find(&self, fingerprint: &str) -> Option<&PublicKey> {
        self.keys
            .iter()
            .find(|k| k.fingerprint.eq_ignore_ascii_case(fingerprint))
    }

    /// Number of listed keys.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Whether no key is listed.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }
}

/// Decodes base64 DER as PKCS#1 `RSAPublicKey` or X.509 `SubjectPublicKeyInfo`.
fn decode_der_base64(value: &str) -> Result<RsaPublicKey, String> {
    let der = base64::engine::general_purpose::STANDARD
        .decode(value.trim())
        .map_err(|e| format!("Value is not base64: {e}"))?;
    decode_der(&der)
}

/// Decodes DER as PKCS#1 `RSAPublicKey` or X.509 `SubjectPublicKeyInfo`.
pub fn decode_der(der: &[u8]) -> Result<RsaPublicKey, String> {
    RsaPublicKey::from_pkcs1_der(der)
        .or_else(|_| RsaPublicKey::from_public_key_der(der))
        .map_err(|e| format!("Value is neither a PKCS#1 nor a SubjectPublicKeyInfo RSA key: {e}"))
}

/// ISO 8601 string or epoch seconds (the API's wire format is a JSON number).
fn parse_validity_time(v: &serde_json::Value) -> Option<OffsetDateTime> {
    match v {
        serde_json::Value::String(s) => OffsetDateTime::parse(s, &Rfc3339).ok(),
        serde_json::Value::Number(n) => {
            let secs = n.as_i64().or_else(|| {
                n.as_f64()
                    .filter(|f| f.is_finite())
                    .map(|f| f.trunc() as i64)
            })?;
            OffsetDateTime::from_unix_timestamp(secs).ok()
        }
        _ => None,
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use rsa::pkcs1::EncodeRsaPublicKey;
    use rsa::pkcs8::EncodePublicKey;
    use rsa::rand_core::{CryptoRng, RngCore};
    use rsa::RsaPrivateKey;
    use time::macros::datetime;

    /// Deterministic generator for test keys only (splitmix64); not for real keys.
    pub(crate) struct TestRng(pub u64);
    impl RngCore for TestRng {
        fn next_u32(&mut self) -> u32 {
            (self.next_u64() >> 32) as u32
        }
        fn next_u64(&mut self) -> u64 {
            self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = self.0;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^ (z >> 31)
        }
        fn fill_bytes(&mut self, dest: &mut [u8]) {
            for chunk in dest.chunks_mut(8) {
                let v = self.next_u64().to_le_bytes();
                chunk.copy_from_slice(&v[..chunk.len()]);
            }
        }
        fn try_fill_bytes(&mut self, dest: &mut [u8]) -> Result<(), rsa::rand_core::Error> {
            self.fill_bytes(dest);
            Ok(())
        }
    }
    impl CryptoRng for TestRng {}

    /// A small deterministic RSA key for tests (1024 bits keeps key generation fast).
    pub(crate) fn test_key(seed: u64) -> RsaPrivateKey {
        RsaPrivateKey::new(&mut TestRng(seed), 1024).unwrap()
    }

    fn b64(b: &[u8]) -> String {
        base64::engine::general_purpose::STANDARD.encode(b)
    }

    #[test]
    fn both_der_encodings_decode_to_the_same_key() {
        let k = test_key(1);
        let pubkey = k.to_public_key();
        let pkcs1 = pubkey.to_pkcs1_der().unwrap();
        let spki = pubkey.to_public_key_der().unwrap();
        assert_eq!(
            &pkcs1.as_bytes()[..2],
            [0x30, 0x81],
            "1024-bit PKCS#1 starts with a SEQUENCE"
        );
        assert_ne!(pkcs1.as_bytes(), spki.as_bytes());
        assert_eq!(decode_der(pkcs1.as_bytes()).unwrap(), pubkey);
        assert_eq!(decode_der(spki.as_bytes()).unwrap(), pubkey);
        assert!(decode_der(b"\x30\x03\x02\x01\x05").is_err());
    }

    #[test]
    fn selects_by_fingerprint_and_keeps_undecodable_entries() {
        let a = test_key(1).to_public_key();
        let b = test_key(2).to_public_key();
        let body = serde_json::json!({ "PublicKeyList": [
            { "Value": b64(a.to_pkcs1_der().unwrap().as_bytes()), "Fingerprint": "aaaa",
              "ValidityStartTime": "2025-02-09T00:05:17Z", "ValidityEndTime": "2025-03-11T00:05:17Z" },
            { "Value": b64(b.to_public_key_der().unwrap().as_bytes()), "Fingerprint": "BBBB",
              "ValidityStartTime": 1739059517, "ValidityEndTime": 1741651517.0 },
            { "Value": "!!not base64", "Fingerprint": "cccc" },
            { "Value": b64(b"garbage"), "Fingerprint": "dddd" },
            { "Value": "no fingerprint is skipped" }
        ]});
        let set = PublicKeySet::from_list_public_keys_json(body.to_string().as_bytes()).unwrap();
        assert_eq!(set.len(), 4);
        assert_eq!(set.find("aaaa").unwrap().key.as_ref().unwrap(), &a);
        assert_eq!(set.find("bbbb").unwrap().key.as_ref().unwrap(), &b);
        assert!(set
            .find("cccc")
            .unwrap()
            .key
            .as_ref()
            .unwrap_err()
            .contains("base64"));
        assert!(set.find("dddd").unwrap().key.is_err());
        assert!(set.find("eeee").is_none());
    }

    #[test]
    fn validity_times_accept_iso_and_epoch() {
        let body = br#"{"PublicKeyList": [
            {"Value": "", "Fingerprint": "iso", "ValidityStartTime": "2025-02-09T00:05:17Z", "ValidityEndTime": "2025-03-11T00:05:17.000Z"},
            {"Value": "", "Fingerprint": "epoch", "ValidityStartTime": 1739059517, "ValidityEndTime": 1741651517.5},
            {"Value": "", "Fingerprint": "junk", "ValidityStartTime": "yesterday", "ValidityEndTime": true}
        ]}"#;
        let set = PublicKeySet::from_list_public_keys_json(body).unwrap();
        let iso = set.find("iso").unwrap();
        let epoch = set.find("epoch").unwrap();
        assert_eq!(iso.valid_from, Some(datetime!(2025-02-09 00:05:17 UTC)));
        assert_eq!(iso.valid_until, Some(datetime!(2025-03-11 00:05:17 UTC)));
        assert_eq!(epoch.valid_from, iso.valid_from);
        assert_eq!(epoch.valid_until, iso.valid_until);
        let junk = set.find("junk").unwrap();
        assert_eq!((junk.valid_from, junk.valid_until), (None, None));
    }

    #[test]
    fn malformed_list_is_an_error() {
        assert!(PublicKeySet::from_list_public_keys_json(b"{").is_err());
        assert!(PublicKeySet::from_list_public_keys_json(br#"{"PublicKeyList": 3}"#).is_err());
        assert!(PublicKeySet::from_list_public_keys_json(br#"{}"#)
            .unwrap()
            .is_empty());
    }
}

//! S3 object keys: notification decoding (`+` and `%XX`), CloudTrail key parsing, digest
//! keys and trail ARNs. Keys arrive from S3 event notifications, i.e. from whoever can
//! write to the bucket, so none of this may panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use percent_encoding::{utf8_percent_encode, NON_ALPHANUMERIC};
use trailwatch::audit::digest::{DigestKey, TrailArn};
use trailwatch::model::{decode_notification_key, KeyKind, S3Key};

fuzz_target!(|data: &[u8]| {
    let Ok(raw) = std::str::from_utf8(data) else {
        return;
    };
    check_key(raw);
    if let Ok(decoded) = decode_notification_key(raw) {
        check_key(&decoded);
        // encoding the decoded key the way S3 does and decoding it again is the identity
        let encoded = utf8_percent_encode(&decoded, NON_ALPHANUMERIC).to_string();
        let again = decode_notification_key(&encoded);
        assert_eq!(again.ok().as_deref(), Some(decoded.as_str()));
    }
    let _ = DigestKey::parse(raw);
    let _ = TrailArn::parse(raw);
});

fn check_key(key: &str) {
    let k = S3Key::parse(key);
    assert_eq!(k.as_str(), key);
    // a key classified as a log or digest carries every folder the handler relies on
    if matches!(k.kind, KeyKind::Log | KeyKind::Digest | KeyKind::Insight) {
        assert!(k.account.is_some() && k.region.is_some() && k.date.is_some());
        assert!(key.contains("AWSLogs/"));
    }
    let _ = k.kind.is_evaluated();
    let _ = k.to_string();
}

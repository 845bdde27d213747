//! Sigma rules as users write them: YAML text → `RuleSet::from_sources` (YAML parse,
//! modifiers, conditions, regexes, correlations) → evaluation against fixed records.
//! Rule files are user input (`trailwatch rules test`, custom packs), so a bad rule must
//! be a load error with a position, never a panic or a runaway regex.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::sync::OnceLock;
use trailwatch::model::Record;

const RECORDS: [&str; 2] = [
    r#"{"eventVersion":"1.08","eventID":"7f3a9e2c-0000-4000-8000-000000000001","eventTime":"2026-11-23T11:00:00Z","eventSource":"signin.amazonaws.com","eventName":"ConsoleLogin","awsRegion":"us-east-1","sourceIPAddress":"198.51.100.7","userIdentity":{"type":"Root","arn":"arn:aws:iam::111122223333:root","accountId":"111122223333"},"additionalEventData":{"MFAUsed":"No"},"responseElements":{"ConsoleLogin":"Success"},"eventType":"AwsConsoleSignIn","recipientAccountId":"111122223333"}"#,
    r#"{"eventVersion":"1.08","eventID":"7f3a9e2c-0000-4000-8000-000000000002","eventTime":"2026-11-23T11:05:00Z","eventSource":"cloudtrail.amazonaws.com","eventName":"StopLogging","awsRegion":"eu-west-1","sourceIPAddress":"203.0.113.9","userIdentity":{"type":"AssumedRole","arn":"arn:aws:sts::111122223333:assumed-role/admin/x","accountId":"111122223333"},"requestParameters":{"name":"main","tags":[1,2.5,null,true]},"readOnly":false,"eventType":"AwsApiCall","recipientAccountId":"111122223333","errorCode":"AccessDenied"}"#,
];

fn records() -> &'static Vec<Record> {
    static R: OnceLock<Vec<Record>> = OnceLock::new();
    R.get_or_init(|| {
        RECORDS
            .iter()
            .filter_map(|t| Record::from_json(*t).ok())
            .collect()
    })
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match trailwatch::detect::RuleSet::from_sources([("fuzz.yml", text)]) {
        Ok(set) => {
            let mut out = Vec::new();
            for r in records() {
                out.clear();
                set.matches(r, &mut out);
                assert!(out.len() <= set.rules().len());
            }
        }
        Err(errors) => {
            // every failure is reported, against the file it came from
            assert!(!errors.is_empty());
            assert!(errors
                .iter()
                .all(|e| e.file == "fuzz.yml" && !e.message.is_empty()));
        }
    }
});

use super::*;
use flate2::write::GzEncoder;
use flate2::Compression;
use std::io::Write;

fn gz(bytes: &[u8]) -> Vec<u8> {
    let mut e = GzEncoder::new(Vec::new(), Compression::fast());
    e.write_all(bytes).unwrap();
    e.finish().unwrap()
}

fn rec(i: usize) -> String {
    format!(
        r#"{{"eventVersion":"1.08","eventID":"id-{i}","eventName":"GetObject","eventSource":"s3.amazonaws.com","requestParameters":{{"bucketName":"b","key":"k{{}}\"]"}}}}"#
    )
}

fn log_file(n: usize) -> String {
    let recs: Vec<String> = (0..n).map(rec).collect();
    format!("{{\"Records\":[{}]}}", recs.join(","))
}

/// (event ids, rejected count, skipped count, final error)
fn read_all(bytes: Vec<u8>) -> (Vec<String>, usize, usize, Option<StreamError>) {
    let reader = open(
        std::io::Cursor::new(bytes),
        ReaderOptions {
            max_record_bytes: 4096,
        },
    )
    .unwrap();
    let (mut ids, mut rej, mut skip, mut err) = (Vec::new(), 0, 0, None);
    for item in reader {
        match item {
            Ok(Item::Record(r)) => ids.push(r.event_id_or_digest()),
            Ok(Item::Rejected(_)) => rej += 1,
            Ok(Item::Skipped { .. }) => skip += 1,
            Err(e) => err = Some(e),
        }
    }
    (ids, rej, skip, err)
}

#[test]
fn log_file_plain_and_gzip() {
    for bytes in [log_file(3).into_bytes(), gz(log_file(3).as_bytes())] {
        let (ids, rej, _, err) = read_all(bytes);
        assert_eq!(ids, ["id-0", "id-1", "id-2"]);
        assert_eq!(rej, 0);
        assert!(err.is_none(), "{err:?}");
    }
}

#[test]
fn zero_records_is_fine_and_empty_input_is_an_error() {
    let (ids, _, _, err) = read_all(br#"{"Records":[]}"#.to_vec());
    assert!(ids.is_empty() && err.is_none());
    let (_, _, _, err) = read_all(Vec::new());
    assert!(matches!(err, Some(StreamError::Empty)));
}

#[test]
fn concatenated_gzip_members_are_all_read() {
    let mut bytes = gz(log_file(2).as_bytes());
    bytes.extend(gz(br#"{"Records":[{"eventID":"extra"}]}"#));
    let (ids, _, _, err) = read_all(bytes);
    assert_eq!(ids, ["id-0", "id-1", "extra"]);
    assert!(err.is_none());
}

#[test]
fn truncated_gzip_keeps_records_before_the_cut() {
    let full = gz(log_file(200).as_bytes());
    let cut = full[..full.len() * 2 / 3].to_vec();
    let (ids, _, _, err) = read_all(cut);
    assert!(ids.len() > 10 && ids.len() < 200, "{}", ids.len());
    assert_eq!(ids[0], "id-0");
    assert!(
        matches!(
            err,
            Some(StreamError::Gzip { .. }) | Some(StreamError::Truncated { .. })
        ),
        "{err:?}"
    );
}

#[test]
fn truncated_json_mid_record() {
    let text = log_file(3);
    let cut = text.as_bytes()[..text.len() - 40].to_vec();
    let (ids, _, _, err) = read_all(cut);
    assert_eq!(ids, ["id-0", "id-1"]);
    let Some(StreamError::Truncated { at }) = err else {
        panic!("{err:?}")
    };
    assert_eq!(at.index, 2);
}

#[test]
fn a_malformed_record_does_not_lose_the_next() {
    let text = format!(
        r#"{{"Records":[{},{{"eventID": tru}},[1],{}]}}"#,
        rec(0),
        rec(2)
    );
    let (ids, rej, _, err) = read_all(text.into_bytes());
    assert_eq!(ids, ["id-0", "id-2"]);
    assert_eq!(rej, 2);
    assert!(err.is_none());
}

#[test]
fn oversized_records_are_rejected_and_skipped() {
    let big = format!(r#"{{"eventID":"big","pad":"{}"}}"#, "x".repeat(10_000));
    let text = format!(r#"{{"Records":[{},{big},{}]}}"#, rec(0), rec(2));
    let (ids, rej, _, _) = read_all(text.into_bytes());
    assert_eq!(ids, ["id-0", "id-2"]);
    assert_eq!(rej, 1);
}

#[test]
fn arrays_envelopes_ndjson_and_lookup_events() {
    let env = r#"{"version":"0","id":"1","detail-type":"AWS API Call via CloudTrail","source":"aws.iam","detail":{"eventID":"from-eb"}}"#;
    let other = r#"{"version":"0","id":"2","detail-type":"EC2 Instance State-change Notification","source":"aws.ec2","detail":{"state":"running"}}"#;
    let nodetail = r#"{"version":"0","id":"3","detail-type":"AWS API Call via CloudTrail","source":"aws.iam"}"#;
    let text = format!("[{},{env},{other},{nodetail}]", rec(0));
    let (ids, rej, skip, err) = read_all(text.into_bytes());
    assert_eq!(ids, ["id-0", "from-eb"]);
    assert_eq!((rej, skip), (1, 1));
    assert!(err.is_none());

    let nd = format!("{}\n{}\n{env}\n", rec(0), rec(1));
    let (ids, _, _, err) = read_all(nd.into_bytes());
    assert_eq!(ids, ["id-0", "id-1", "from-eb"]);
    assert!(err.is_none());

    let lookup = r#"{"Events":[{"EventId":"a","CloudTrailEvent":"{\"eventID\":\"lk-1\"}"}],"NextToken":"x"}"#;
    let (ids, _, _, err) = read_all(lookup.as_bytes().to_vec());
    assert_eq!(ids, ["lk-1"]);
    assert!(err.is_none());
}

#[test]
fn records_not_first_key_and_records_not_array() {
    let text = format!(r#"{{"meta":1,"Records":[{}]}}"#, rec(5));
    let (ids, _, _, err) = read_all(text.into_bytes());
    assert_eq!(ids, ["id-5"]);
    let deep = format!(
        r#"{{"Records":[{},{{"eventID":"deep","requestParameters":{}{}}},{}]}}"#,
        rec(0),
        "[".repeat(10_000),
        "]".repeat(10_000),
        rec(1)
    );
    let reader = open(
        std::io::Cursor::new(deep.into_bytes()),
        ReaderOptions::default(),
    )
    .unwrap();
    let items: Vec<_> = reader.collect();
    assert_eq!(items.len(), 3);
    assert!(
        matches!(
            &items[1],
            Ok(Item::Rejected(Rejected {
                reason: RejectReason::Invalid(RecordError::TooDeep(_)),
                ..
            }))
        ),
        "{:?}",
        items[1]
    );
    assert!(err.is_none());
    let (ids, rej, _, _) = read_all(br#"{"Records":{"eventID":"x"}}"#.to_vec());
    assert!(ids.is_empty());
    assert_eq!(rej, 1);
}

#[test]
fn not_json_and_invalid_utf8() {
    let (_, _, _, err) = read_all(gz(b"hello world"));
    assert!(matches!(err, Some(StreamError::Shape { .. })), "{err:?}");
    let mut bad = br#"{"Records":[{"eventID":"a"},{"eventID":""#.to_vec();
    bad.extend([0xff, 0xfe]);
    bad.extend(br#""},{"eventID":"c"}]}"#);
    let (ids, rej, _, err) = read_all(bad);
    assert_eq!(ids, ["a", "c"]);
    assert_eq!(rej, 1);
    assert!(err.is_none());
}

#[test]
fn counts_balance() {
    let text = format!(r#"{{"Records":[{},{{"x":}},{}]}}"#, rec(0), rec(1));
    let mut r = open(
        std::io::Cursor::new(text.into_bytes()),
        ReaderOptions::default(),
    )
    .unwrap();
    let n = r
        .by_ref()
        .filter(|i| matches!(i, Ok(Item::Record(_))))
        .count();
    let c = r.counts();
    assert_eq!((n as u64, c.records, c.rejected), (2, 2, 1));
}

proptest::proptest! {
    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..512)) {
        let _ = read_all(bytes.clone());
        let _ = read_all(gz(&bytes));
    }

    #[test]
    fn any_cut_of_a_log_yields_a_prefix(cut in 0usize..2000) {
        let text = log_file(10);
        let cut = cut.min(text.len());
        let (ids, _, _, _) = read_all(text.as_bytes()[..cut].to_vec());
        for (i, id) in ids.iter().enumerate() {
            proptest::prop_assert_eq!(id, &format!("id-{i}"));
        }
    }
}

#[test]
fn lambda_event_records_are_skipped_not_evaluated() {
    let s3 = r#"{"Records":[{"eventVersion":"2.1","eventSource":"aws:s3","eventName":"ObjectCreated:Put","s3":{}},{"EventSource":"aws:sns","Sns":{}}]}"#;
    let (ids, rej, skip, err) = read_all(s3.as_bytes().to_vec());
    assert!(ids.is_empty());
    assert_eq!((rej, skip), (0, 2));
    assert!(err.is_none());
}

#[test]
fn buffered_and_scanned_records_read_the_same() {
    // a one-byte buffer never holds a whole record, so every record takes the scan and
    // serde_json path; a large one takes the one-pass index: both must yield the same items
    let mut text = String::from("{\"Records\":[");
    let bodies = [
        rec(0),
        r#"{"eventName":"A","eventName":"B","x":[1,{"y":"}"}],"n":-1.5e3}"#.to_owned(),
        r#"{"eventName":"C","bad":01}"#.to_owned(),
        r#"{"ev\u0065ntName":"D"}"#.to_owned(),
        "{\"eventName\":\"E\",\"ctl\":\"a\u{1}b\"}".to_owned(),
        r#"{"eventName":"F","k":"\q"}"#.to_owned(),
        "[1]".to_owned(),
        rec(1),
    ];
    text.push_str(&bodies.join(" , "));
    text.push_str("]}");
    let read = |cap: usize| {
        let r = RecordReader::new(
            std::io::BufReader::with_capacity(cap, text.as_bytes()),
            ReaderOptions::default(),
        );
        r.map(|item| match item {
            Ok(Item::Record(r)) => format!(
                "record {:?} {:?} {}",
                r.event_name(),
                r.keys().collect::<Vec<_>>(),
                r.as_json()
            ),
            Ok(Item::Rejected(rej)) => format!("rejected {} {}", rej.at, rej.reason),
            Ok(Item::Skipped { at, what }) => format!("skipped {at} {what}"),
            Err(e) => format!("error {e}"),
        })
        .collect::<Vec<_>>()
    };
    let scanned = read(1);
    assert_eq!(scanned.len(), 8);
    assert_eq!(read(64 * 1024), scanned);
    assert!(
        scanned[1].starts_with("record Some(\"B\")"),
        "{}",
        scanned[1]
    );
    assert!(
        scanned[2].starts_with("rejected record 2"),
        "{}",
        scanned[2]
    );
    assert!(
        scanned[3].starts_with("record Some(\"D\")"),
        "{}",
        scanned[3]
    );
}

#[test]
fn recycled_buffers_read_the_same_records() {
    // records of every size and shape in turn, so that each reuses the buffers of one
    // unlike it: longer and shorter texts, with and without `userIdentity`, one larger than
    // the spare buffers are kept for, one read by the scan path
    let mut bodies = Vec::new();
    for i in 0..40 {
        let pad = "x".repeat((i * 997) % 5000);
        bodies.push(match i % 4 {
            0 => format!(
                r#"{{"eventID":"e{i}","userIdentity":{{"type":"AssumedRole","arn":"arn:aws:sts::1:assumed-role/r/s{i}","sessionContext":{{"a":1}}}},"eventName":"N{i}","p":"{pad}"}}"#
            ),
            1 => format!(r#"{{"eventName":"N{i}","requestParameters":{{"k":"{pad}"}}}}"#),
            2 => format!(r#"{{"eventID":"e{i}","userIdentity":{{"arn":"u{i}"}}}}"#),
            _ => format!(r#"{{"eventName":"N{i}","big":"{}"}}"#, "y".repeat(70_000 + i)),
        });
    }
    let text = format!("{{\"Records\":[{}]}}", bodies.join(","));
    let read = |recycle: bool| {
        let mut r = RecordReader::new(
            std::io::BufReader::with_capacity(64 * 1024, text.as_bytes()),
            ReaderOptions {
                max_record_bytes: 1 << 20,
            },
        );
        let mut out = Vec::new();
        while let Some(item) = r.next() {
            let Ok(Item::Record(rec)) = item else {
                panic!("not a record: {item:?}");
            };
            out.push(format!(
                "{:?} {:?} {:?} {:?} {}",
                rec.event_name(),
                rec.str_at("userIdentity.arn"),
                rec.str_at("requestParameters.k").map(str::len),
                rec.keys().collect::<Vec<_>>(),
                rec.as_json().len()
            ));
            if recycle {
                r.recycle(rec);
            }
        }
        out
    };
    let plain = read(false);
    assert_eq!(plain.len(), 40);
    assert!(plain[0].contains("assumed-role/r/s0"), "{}", plain[0]);
    assert_eq!(read(true), plain);
}

//! Correlation state in DynamoDB (a private moto server): the port's contract (set
//! deduplication, the cap, first-writer scalars, episode claims), a burst split across
//! flushes out of order and duplicated giving one finding, and alert groups.
#![cfg(feature = "aws")]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "support/fault_proxy.rs"]
mod fault_proxy;
mod support;

use aws_sdk_dynamodb::types::AttributeValue;
use fault_proxy::{Fault, FaultProxy, Reply};
use serde_json::json;
use std::collections::{BTreeMap, BTreeSet};
use support::Moto;
use trailwatch::correlate::{Batch, Correlator};
use trailwatch::detect::RuleSet;
use trailwatch::model::Record;
use trailwatch::ports::aws::DynamoDbCorrelationState;
use trailwatch::ports::state::{CorrelationState, Episode, Member, StateKey, StateUpdate};
use trailwatch::suppress::group::{self, Announce, GroupKey};

const TABLE: &str = "findings";

async fn setup(test: &str) -> Option<(Moto, DynamoDbCorrelationState)> {
    let moto = Moto::start(test)?;
    moto.create_findings_table(TABLE).await;
    let state = DynamoDbCorrelationState::new(moto.dynamodb().await, TABLE);
    Some((moto, state))
}

fn update(members: &[&str], cap: usize, first: &str) -> StateUpdate {
    StateUpdate {
        key: StateKey {
            pk: "STATE#c#g".into(),
            sk: "1795000000".into(),
        },
        add: BTreeMap::from([(
            "e".to_owned(),
            members.iter().map(|m| Member::from(*m)).collect(),
        )]),
        set_if_absent: BTreeMap::from([("group".to_owned(), first.to_owned())]),
        set: BTreeMap::new(),
        cap,
        expires_at: 4_000_000_000,
    }
}

#[tokio::test]
async fn dynamodb_state_follows_the_port_contract() {
    let Some((_moto, s)) = setup("dynamodb_state_follows_the_port_contract").await else {
        return;
    };
    let a = s.add(&update(&["1|a", "2|b"], 3, "first")).await.unwrap();
    assert_eq!((a.len_of("e"), a.full), (2, false));
    // a redelivered member counts once; `group` keeps its first value
    let b = s.add(&update(&["2|b", "3|c"], 3, "second")).await.unwrap();
    assert_eq!(b.len_of("e"), 3);
    assert_eq!(b.scalars["group"], "first");
    assert_eq!(b.scalars["expires_at"], "4000000000");
    // the set holds the cap: refused, current item returned
    let c = s.add(&update(&["4|d"], 3, "x")).await.unwrap();
    assert!(c.full);
    assert_eq!(c.len_of("e"), 3);
    let read = s.get(&update(&[], 3, "").key).await.unwrap().unwrap();
    assert_eq!(read.set("e").collect::<Vec<_>>(), ["1|a", "2|b", "3|c"]);
    assert!(s
        .get(&StateKey {
            pk: "nope".into(),
            sk: "0".into()
        })
        .await
        .unwrap()
        .is_none());

    let k = StateKey {
        pk: "STATE#c#g".into(),
        sk: "EPISODE".into(),
    };
    let e1 = Episode {
        start: 100,
        end: 700,
    };
    assert_eq!(s.claim(&k, e1, 4_000_000_000).await.unwrap(), e1);
    let overlapping = Episode {
        start: 400,
        end: 1000,
    };
    assert_eq!(s.claim(&k, overlapping, 4_000_000_000).await.unwrap(), e1);
    let later = Episode {
        start: 701,
        end: 1301,
    };
    assert_eq!(s.claim(&k, later, 4_000_000_000).await.unwrap(), later);
}

fn denied(i: i64) -> Record {
    let t = time::OffsetDateTime::from_unix_timestamp(1_794_999_600 + i * 20)
        .unwrap()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    Record::from_value(&json!({
        "eventVersion": "1.09", "eventID": format!("00000000-0000-4000-8000-{i:012}"),
        "eventTime": t, "eventName": "ListBuckets", "eventSource": "s3.amazonaws.com",
        "userIdentity": {"type": "IAMUser", "arn": "arn:aws:iam::111122223333:user/mallory",
                         "accountId": "111122223333"},
        "errorCode": "AccessDenied", "recipientAccountId": "111122223333",
        "awsRegion": "us-east-1", "sourceIPAddress": "203.0.113.9", "eventType": "AwsApiCall"
    }))
    .unwrap()
}

#[tokio::test]
async fn a_burst_over_three_files_out_of_order_and_duplicated_is_one_finding() {
    let Some((moto, s)) =
        setup("a_burst_over_three_files_out_of_order_and_duplicated_is_one_finding").await
    else {
        return;
    };
    let rules = RuleSet::bundled().unwrap();
    let correlator = Correlator::new(&rules);
    // 24 denied calls in 8 minutes (threshold: 20 in 10 minutes), as three files of 8
    let files: Vec<Vec<Record>> = (0..3)
        .map(|f| (f * 8..f * 8 + 8).map(denied).collect())
        .collect();
    let mut ids = BTreeSet::new();
    let mut total = 0;
    for f in [2usize, 0, 2, 1] {
        let mut batch = Batch::default();
        for r in &files[f] {
            let mut matched = Vec::new();
            rules.matches(r, &mut matched);
            correlator.observe(&mut batch, r, &matched, "s3://b/k");
        }
        for finding in correlator.flush(&s, batch).await.unwrap() {
            if finding.rule_id == "tw-corr-access-denied-burst" {
                total += 1;
                ids.insert(finding.id);
            }
        }
    }
    // fires when the last file arrives (24 distinct events), then is stable
    assert_eq!(ids.len(), 1, "{ids:?}");
    assert_eq!(total, 1);
    // the state items: one bucket holding each eventID once, capped; the episode; TTLs
    let items = moto.scan_table(TABLE).await;
    let state: Vec<_> = items
        .iter()
        .filter(|i| {
            matches!(i.get("pk"), Some(AttributeValue::S(pk)) if pk.starts_with("STATE#tw-corr-access-denied-burst#"))
        })
        .collect();
    let bucket = state
        .iter()
        .find(|i| matches!(i.get("sk"), Some(AttributeValue::S(sk)) if sk != "EPISODE"))
        .expect("bucket item");
    let members = bucket.get("e").and_then(|v| v.as_ss().ok()).unwrap();
    // the cap (20 + 16) is above 24: every distinct event is there once
    assert_eq!(members.len(), 24);
    assert!(bucket.get("expires_at").is_some_and(|v| v.as_n().is_ok()));
    assert!(state
        .iter()
        .any(|i| matches!(i.get("sk"), Some(AttributeValue::S(sk)) if sk == "EPISODE")));
}

#[tokio::test]
async fn alert_groups_have_one_leader_in_dynamodb() {
    let Some((_moto, s)) = setup("alert_groups_have_one_leader_in_dynamodb").await else {
        return;
    };
    let finding = |event: &str, time: &str| trailwatch::findings::Finding {
        episode_start: None,
        id: trailwatch::findings::finding_id("r", event),
        rule_id: "r".into(),
        title: "t".into(),
        severity: trailwatch::findings::Severity::High,
        tags: vec![],
        event_id: event.into(),
        event_name: "DeleteBucket".into(),
        event_time: time.into(),
        event_source: "s3.amazonaws.com".into(),
        account_id: "111122223333".into(),
        region: "us-east-1".into(),
        source: "s".into(),
        principal: Some("arn:aws:iam::111122223333:user/alice".into()),
        source_ip: None,
        error_code: None,
    };
    let a = finding("a", "2026-11-21T10:05:00Z");
    let b = finding("b", "2026-11-21T10:01:00Z");
    let ra = group::admit(&s, &a, Some("bucket-1"), 3600).await.unwrap();
    let rb = group::admit(&s, &b, Some("bucket-1"), 3600).await.unwrap();
    let ra2 = group::admit(&s, &a, Some("bucket-1"), 3600).await.unwrap();
    assert_eq!(ra.announce, Announce::Leader(a.id.clone()));
    assert_eq!(rb.announce, Announce::Nothing);
    assert_eq!(ra2.announce, Announce::Leader(a.id.clone()));
    assert_eq!((rb.summary.count, ra2.summary.count), (2, 2));
    assert_eq!(rb.summary.first_seen, "2026-11-21T10:01:00Z");
    assert_eq!(rb.summary.last_seen, "2026-11-21T10:05:00Z");

    // a burst in batches (one of them redelivered): one leader, each threshold announced
    // once, by a finding of the batch that crossed it; chunks of 100 stop at the cap
    let burst: Vec<_> = (0..1150)
        .map(|i| {
            finding(
                &format!("ev-{i:04}"),
                &format!("2026-11-21T12:{:02}:{:02}Z", i / 60 % 60, i % 60),
            )
        })
        .collect();
    let refs: Vec<_> = burst.iter().collect();
    let key = GroupKey::of(&burst[0], None, 3600);
    let r = group::admit_all(&s, &key, &refs[..4], 3600).await.unwrap();
    assert_eq!(r.announce, Announce::Leader(burst[0].id.clone()));
    let update_10 = Announce::Update {
        threshold: 10,
        by: burst[10].id.clone(),
    };
    for _ in 0..2 {
        let r = group::admit_all(&s, &key, &refs[4..11], 3600)
            .await
            .unwrap();
        assert_eq!((&r.announce, r.summary.count), (&update_10, 11));
    }
    let r = group::admit_all(&s, &key, &refs[11..150], 3600)
        .await
        .unwrap();
    assert_eq!(r.summary.count, 150);
    assert_eq!(
        r.announce,
        Announce::Update {
            threshold: 100,
            by: burst[149].id.clone()
        }
    );
    let r = group::admit_all(&s, &key, &refs[150..], 3600)
        .await
        .unwrap();
    assert!(matches!(
        r.announce,
        Announce::Update {
            threshold: 1000,
            ..
        }
    ));
    assert!(r.summary.saturated && r.summary.count >= 1000 && r.summary.count <= 1100);
    assert_eq!(r.summary.first_seen, "2026-11-21T12:00:00Z");
    let item = s
        .get(&StateKey {
            pk: format!("ALERTGROUP#{}", key.hash),
            sk: key.start.to_string(),
        })
        .await
        .unwrap()
        .unwrap();
    assert_eq!(item.scalars["leader"], burst[0].id);
    assert_eq!(item.scalars["update_10"], burst[10].id);
    assert_eq!(item.scalars["update_100"], burst[149].id);
}

#[tokio::test]
async fn a_ratio_beyond_its_cap_in_one_file_still_fires_in_dynamodb() {
    let Some((_moto, s)) =
        setup("a_ratio_beyond_its_cap_in_one_file_still_fires_in_dynamodb").await
    else {
        return;
    };
    let rules = RuleSet::bundled().unwrap();
    let correlator = Correlator::new(&rules);
    // 2,500 DescribeInstances calls by one principal in one file (ratio cap: 2,000);
    // before interleaving the sets, `d` filled up first and the ratio read 0 %
    let mut batch = Batch::default();
    for i in 0..2500i64 {
        let t = time::OffsetDateTime::from_unix_timestamp(1_794_999_600 + i % 3600)
            .unwrap()
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap();
        let r = Record::from_value(&json!({
            "eventVersion": "1.09", "eventID": format!("00000000-0000-4000-9000-{i:012}"),
            "eventTime": t, "eventName": "DescribeInstances", "eventSource": "ec2.amazonaws.com",
            "userIdentity": {"type": "IAMUser", "arn": "arn:aws:iam::111122223333:user/scanner",
                             "accountId": "111122223333"},
            "recipientAccountId": "111122223333", "readOnly": true,
            "awsRegion": "us-east-1", "sourceIPAddress": "203.0.113.9", "eventType": "AwsApiCall"
        }))
        .unwrap();
        let mut matched = Vec::new();
        rules.matches(&r, &mut matched);
        correlator.observe(&mut batch, &r, &matched, "s3://b/k");
    }
    let found: Vec<String> = correlator
        .flush(&s, batch)
        .await
        .unwrap()
        .into_iter()
        .map(|f| f.rule_id)
        .collect();
    assert!(
        found.iter().any(|r| r == "tw-corr-enumeration-ratio"),
        "{found:?}"
    );
}

#[tokio::test]
async fn an_episode_reported_by_two_flushes_is_one_stored_finding() {
    use trailwatch::ports::aws::DynamoDbFindingStore;
    use trailwatch::ports::{FindingStore, Put, StoredFinding};
    let Some((moto, s)) = setup("an_episode_reported_by_two_flushes_is_one_stored_finding").await
    else {
        return;
    };
    let store = DynamoDbFindingStore::new(
        moto.dynamodb().await,
        TABLE,
        30,
        std::num::NonZeroUsize::MIN,
    );
    let rules = RuleSet::bundled().unwrap();
    let correlator = Correlator::new(&rules);
    // 24 denied calls, then 4 more of the same episode in a later file: the second flush
    // reports the same finding showing a later event
    let mut reported = Vec::new();
    for calls in [0..24, 24..28] {
        let mut batch = Batch::default();
        for r in calls.map(denied) {
            let mut matched = Vec::new();
            rules.matches(&r, &mut matched);
            correlator.observe(&mut batch, &r, &matched, "s3://b/k");
        }
        reported.extend(
            correlator
                .flush(&s, batch)
                .await
                .unwrap()
                .into_iter()
                .filter(|f| f.rule_id == "tw-corr-access-denied-burst"),
        );
    }
    assert_eq!(reported.len(), 2, "{reported:?}");
    let (first, again) = (&reported[0], &reported[1]);
    assert_eq!(first.id, again.id);
    assert_ne!(first.event_time, again.event_time);
    assert!(first.episode_start.is_some());
    assert_eq!(first.episode_start, again.episode_start);
    let put = |f| StoredFinding {
        finding: f,
        record_json: None,
        object_key: None,
    };
    assert_eq!(store.put_stored(put(first)).await.unwrap(), Put::Created);
    assert!(matches!(
        store.put_stored(put(again)).await.unwrap(),
        Put::Duplicate { .. }
    ));
    let findings = moto
        .scan_table(TABLE)
        .await
        .into_iter()
        .filter(|i| matches!(i.get("pk"), Some(AttributeValue::S(pk)) if pk.starts_with("ACCT#")))
        .count();
    assert_eq!(findings, 1);
}

#[tokio::test]
async fn neighbour_buckets_read_in_one_query_are_the_items_get_returns() {
    let Some((_moto, s)) =
        setup("neighbour_buckets_read_in_one_query_are_the_items_get_returns").await
    else {
        return;
    };
    let at = |pk: &str, sk: &str, members: &[&str]| {
        let mut u = update(members, 100, sk);
        u.key = StateKey {
            pk: pk.into(),
            sk: sk.into(),
        };
        u
    };
    let key = |pk: &str, sk: &str| StateKey {
        pk: pk.into(),
        sk: sk.into(),
    };
    let pair = |lo: &str, hi: &str| {
        let (lo, hi) = (key("STATE#c#g", lo), key("STATE#c#g", hi));
        let s = &s;
        async move { s.get_pair(&lo, &hi).await }
    };
    // the bucket, both neighbours, the episode item and another group's bucket
    for u in [
        at("STATE#c#g", "1794999400", &["1794999401|a"]),
        at("STATE#c#g", "1795000000", &["1795000001|b"]),
        at("STATE#c#g", "1795000600", &["1795000601|c", "1795000602|d"]),
        at("STATE#c#h", "1794999400", &["1794999409|z"]),
    ] {
        s.add(&u).await.unwrap();
    }
    s.claim(
        &key("STATE#c#g", "EPISODE"),
        Episode { start: 1, end: 2 },
        4_000_000_000,
    )
    .await
    .unwrap();
    let (below, above) = pair("1794999400", "1795000600").await.unwrap();
    let (below, above) = (below.unwrap(), above.unwrap());
    assert_eq!(below.set("e").collect::<Vec<_>>(), ["1794999401|a"]);
    assert_eq!(
        above.set("e").collect::<Vec<_>>(),
        ["1795000601|c", "1795000602|d"]
    );
    assert_eq!(
        Some(&below),
        s.get(&key("STATE#c#g", "1794999400"))
            .await
            .unwrap()
            .as_ref()
    );
    assert_eq!(
        Some(&above),
        s.get(&key("STATE#c#g", "1795000600"))
            .await
            .unwrap()
            .as_ref()
    );
    // a missing neighbour
    let (below, above) = pair("1795000000", "1795001200").await.unwrap();
    assert_eq!(
        below.unwrap().set("e").collect::<Vec<_>>(),
        ["1795000001|b"]
    );
    assert!(above.is_none());
    // keys whose string order is not their number order are read one by one
    s.add(&at("STATE#c#g", "999999400", &["999999401|y"]))
        .await
        .unwrap();
    let (below, above) = pair("999999400", "1000000600").await.unwrap();
    assert_eq!(below.unwrap().set("e").collect::<Vec<_>>(), ["999999401|y"]);
    assert!(above.is_none());
}

#[tokio::test]
async fn episode_claims_remember_earlier_episodes_in_dynamodb() {
    let Some((moto, s)) = setup("episode_claims_remember_earlier_episodes_in_dynamodb").await
    else {
        return;
    };
    let ep = |start: i64| Episode {
        start,
        end: start + 600,
    };
    let key = |pk: &str| StateKey {
        pk: pk.into(),
        sk: "EPISODE".into(),
    };
    let k = key("STATE#c#g");
    // two episodes, the later one claimed first; a retry of either answers with itself
    assert_eq!(
        s.claim(&k, ep(2000), 4_000_000_000).await.unwrap(),
        ep(2000)
    );
    assert_eq!(s.claim(&k, ep(0), 4_000_000_000).await.unwrap(), ep(0));
    assert_eq!(s.claim(&k, ep(0), 4_000_000_000).await.unwrap(), ep(0));
    assert_eq!(s.claim(&k, ep(300), 4_000_000_000).await.unwrap(), ep(0));
    assert_eq!(
        s.claim(&k, ep(1900), 4_000_000_000).await.unwrap(),
        ep(2000)
    );
    let client = moto.dynamodb().await;
    let stored = client
        .get_item()
        .table_name(TABLE)
        .key("pk", AttributeValue::S(k.pk.clone()))
        .key("sk", AttributeValue::S(k.sk.clone()))
        .send()
        .await
        .unwrap()
        .item
        .unwrap();
    // the latest episode stays readable as ep_start/ep_end, the history by start
    assert_eq!(stored["ep_start"].as_n().unwrap(), "2000");
    let hist: Vec<&str> = stored["ep_hist"]
        .as_l()
        .unwrap()
        .iter()
        .map(|v| v.as_n().unwrap().as_str())
        .collect();
    assert_eq!(hist, ["0", "600", "2000", "2600"]);
    assert_eq!(stored["ep_n"].as_n().unwrap(), "2");

    // an item claimed before the history was kept: its one episode still holds
    let legacy = key("STATE#c#legacy");
    client
        .put_item()
        .table_name(TABLE)
        .item("pk", AttributeValue::S(legacy.pk.clone()))
        .item("sk", AttributeValue::S(legacy.sk.clone()))
        .item("ep_start", AttributeValue::N("5000".into()))
        .item("ep_end", AttributeValue::N("5600".into()))
        .item("expires_at", AttributeValue::N("4000000000".into()))
        .send()
        .await
        .unwrap();
    assert_eq!(s.claim(&legacy, ep(5100), 0).await.unwrap(), ep(5000));
    assert_eq!(s.claim(&legacy, ep(0), 0).await.unwrap(), ep(0));
    assert_eq!(s.claim(&legacy, ep(5300), 0).await.unwrap(), ep(5000));

    // a lost race, made deterministic: claim A's write is held back by the proxy until
    // claim B of an overlapping window has read and written, so A's conditional write meets
    // a version it did not read, fails, and A decides again on what B wrote. (Concurrent
    // claims sent straight to moto cannot test this: moto's threaded server checks a
    // condition and writes without a lock, so two writes can both pass.)
    let proxy = FaultProxy::start(&moto.authority());
    let sdk = moto.sdk_config_via(&proxy.endpoint()).await;
    let via_proxy = DynamoDbCorrelationState::new(aws_sdk_dynamodb::Client::new(&sdk), TABLE);
    let race = key("STATE#c#race");
    let (a, b) = (ep(10_000), ep(10_100));
    proxy.add(Fault {
        op: "UpdateItem",
        path_contains: None,
        body_contains: Some(format!("\"{}\"", a.start)),
        reply: Reply::Delay(std::time::Duration::from_millis(1500)),
        times: Some(1),
    });
    let claim_a = via_proxy.claim(&race, a, 4_000_000_000);
    let claim_b = async {
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        via_proxy.claim(&race, b, 4_000_000_000).await
    };
    let (got_a, got_b) = tokio::join!(claim_a, claim_b);
    assert_eq!((got_a.unwrap(), got_b.unwrap()), (b, b));
    // A read, wrote (refused) and read again; B read and wrote
    assert_eq!(
        proxy.seen_op("GetItem").len(),
        3,
        "claim A reads again after losing"
    );
    assert_eq!(proxy.seen_op("UpdateItem").len(), 2);
    // and a disjoint window after that is its own episode, remembered beside B
    assert_eq!(
        via_proxy.claim(&race, ep(50_000), 0).await.unwrap(),
        ep(50_000)
    );
    assert_eq!(s.claim(&race, ep(10_050), 0).await.unwrap(), b);
}

//! Correlator unit tests over the in-memory state, with small rule sets written inline.

use super::*;
use crate::detect::RuleSet;
use crate::ports::memory_state::MemCorrelationState;
use crate::ports::PortError;
use serde_json::json;

const BASE: &str =
    "title: denied\nname: b-denied\nlogsource: {product: aws, service: cloudtrail}\n\
detection:\n  sel:\n    errorCode: AccessDenied\n  condition: sel\nlevel: low\n";
const BURST: &str = "title: denied burst\nname: c-burst\ncorrelation:\n  type: event_count\n  rules: [b-denied]\n  group-by: [userIdentity.arn]\n  timespan: 10m\n  condition: {gte: 3}\nlevel: high\n";

fn set(extra: &[(&str, &str)]) -> RuleSet {
    let mut sources = vec![("b.yml", BASE), ("c.yml", BURST)];
    sources.extend_from_slice(extra);
    match RuleSet::from_sources(sources) {
        Ok(s) => s,
        Err(e) => panic!("{e:?}"),
    }
}

fn record(id: &str, secs: i64, who: &str, name: &str) -> Record {
    let t = time::OffsetDateTime::from_unix_timestamp(1_794_999_600 + secs).unwrap();
    let v = json!({
        "eventVersion": "1.09", "eventID": id, "eventName": name, "eventSource": "iam.amazonaws.com",
        "eventTime": t.format(&time::format_description::well_known::Rfc3339).unwrap(),
        "userIdentity": {"type": "IAMUser", "arn": who, "accountId": "111122223333"},
        "errorCode": "AccessDenied", "recipientAccountId": "111122223333", "awsRegion": "us-east-1",
        "sourceIPAddress": "203.0.113.9", "eventType": "AwsApiCall"
    });
    Record::from_value(&v).unwrap()
}

/// Run `records` through matching + correlation, one flush per chunk of `per_flush`.
async fn run(
    rules: &RuleSet,
    state: &MemCorrelationState,
    records: &[Record],
    per_flush: usize,
) -> Vec<Finding> {
    run_with(&Correlator::new(rules), rules, state, records, per_flush).await
}

async fn run_with(
    c: &Correlator,
    rules: &RuleSet,
    state: &MemCorrelationState,
    records: &[Record],
    per_flush: usize,
) -> Vec<Finding> {
    assert!(c.warnings().is_empty(), "{:?}", c.warnings());
    let mut out = Vec::new();
    for chunk in records.chunks(per_flush) {
        let mut batch = Batch::default();
        for r in chunk {
            let mut matched = Vec::new();
            rules.matches(r, &mut matched);
            c.observe(&mut batch, r, &matched, "test");
        }
        out.extend(c.flush(state, batch).await.unwrap());
    }
    out
}

/// A building block matching every call by a principal with an ARN (a ratio's denominator).
const ACTIVITY: &str = "title: any\nname: b-any\nlogsource: {product: aws, service: cloudtrail}\n\
detection:\n  sel:\n    userIdentity.arn|exists: true\n  condition: sel\nlevel: low\n";

/// A ratio of denied calls (`b-denied`) among all calls (`b-any`) per principal and day.
fn ratio_rule(gte: u32, min_percent: u32, min_total: u32) -> String {
    format!(
        "title: mostly denied\nname: c-ratio\ncorrelation:\n  type: event_count\n  rules: [b-denied, b-any]\n  \
group-by: [userIdentity.arn]\n  timespan: 24h\n  condition: {{gte: {gte}}}\ntrailwatch:\n  ratio:\n    \
numerator: [b-denied]\n    min_percent: {min_percent}\n    min_total: {min_total}\nlevel: medium\n"
    )
}

/// The burst, a ratio of denied calls and a ratio of `List*` calls: two ratios counting the
/// same calls (one family, one item per principal and day).
fn two_ratios() -> RuleSet {
    const LIST: &str =
        "title: list\nname: b-list\nlogsource: {product: aws, service: cloudtrail}\n\
detection:\n  sel:\n    eventName|startswith: List\n  condition: sel\nlevel: low\n";
    let denied = ratio_rule(2, 10, 3);
    let listing = denied
        .replace("name: c-ratio", "name: c-list-ratio")
        .replace("[b-denied, b-any]", "[b-list, b-any]")
        .replace("numerator: [b-denied]", "numerator: [b-list]");
    set(&[
        ("any.yml", ACTIVITY),
        ("list.yml", LIST),
        ("ratio.yml", &denied),
        ("list-ratio.yml", &listing),
    ])
}

const ALICE: &str = "arn:aws:iam::111122223333:user/alice";
const BOB: &str = "arn:aws:iam::111122223333:user/bob";

#[tokio::test]
async fn a_burst_fires_once_with_a_stable_id() {
    let rules = set(&[]);
    let state = MemCorrelationState::default();
    let recs: Vec<Record> = (0..5)
        .map(|i| record(&format!("e{i}"), i * 60, ALICE, "ListUsers"))
        .collect();
    let found = run(&rules, &state, &recs, 1).await;
    // fires at the 3rd record, then the same episode again at the 4th and 5th
    let ids: std::collections::BTreeSet<&str> = found.iter().map(|f| f.id.as_str()).collect();
    assert_eq!(ids.len(), 1);
    assert_eq!(found.len(), 3);
    let f = &found[0];
    assert_eq!(f.rule_id, "c-burst");
    assert_eq!(f.severity, crate::findings::Severity::High);
    assert_eq!(f.principal.as_deref(), Some(ALICE));
    assert!(
        f.title.starts_with("denied burst (3 events within 10m"),
        "{}",
        f.title
    );
}

#[tokio::test]
async fn one_batch_over_two_buckets_claims_the_earlier_episode_every_time() {
    let rules = set(&[]);
    // a burst in each of two adjacent 600 s buckets, flushed together: whichever bucket the
    // flush wrote first would claim its own episode; the flush goes in (group, bucket) order
    let recs: Vec<Record> = [0, 10, 20, 600, 610, 620]
        .iter()
        .enumerate()
        .map(|(i, &t)| record(&format!("e{i}"), t, ALICE, "X"))
        .collect();
    let want = correlation_finding_id("c-burst", ALICE, 1_794_999_600);
    for _ in 0..20 {
        let state = MemCorrelationState::default();
        let found = run(&rules, &state, &recs, recs.len()).await;
        assert!(!found.is_empty());
        assert!(found.iter().all(|f| f.id == want), "{found:?}");
    }
}

#[tokio::test]
async fn log_time_expiry_ends_with_the_last_window_an_event_can_reach() {
    let rules = set(&[]);
    let c = Correlator::new(&rules).expiring_in_log_time();
    let state = MemCorrelationState::default();
    let recs = vec![record("a1", 0, ALICE, "X")];
    run_with(&c, &rules, &state, &recs, 1).await;
    // bucket 1_794_999_600, timespan 600 s: an event at bucket + 2 × 600 s or later cannot
    // read this bucket as a neighbour, and events may arrive STATE_GRACE_SECS late
    let expires = 1_794_999_600 + 2 * 600 + STATE_GRACE_SECS;
    assert_eq!(state.evict_expired(expires), 0);
    assert_eq!(state.evict_expired(expires + 1), 1);
}

#[tokio::test]
async fn groups_and_windows_are_kept_apart() {
    let rules = set(&[]);
    let state = MemCorrelationState::default();
    // two per principal: neither reaches 3
    let recs = vec![
        record("a1", 0, ALICE, "X"),
        record("a2", 10, ALICE, "X"),
        record("b1", 20, BOB, "X"),
        record("b2", 30, BOB, "X"),
        // alice again, but 11 minutes after her first two
        record("a3", 700, ALICE, "X"),
    ];
    assert!(run(&rules, &state, &recs, 10).await.is_empty());
    // a window straddling the bucket boundary (buckets are 600 s) still counts
    let recs = vec![
        record("c1", 2390, ALICE, "X"),
        record("c2", 2399, ALICE, "X"),
        record("c3", 2401, ALICE, "X"),
    ];
    assert_eq!(run(&rules, &state, &recs, 1).await.len(), 1);
}

#[tokio::test]
async fn building_blocks_without_a_group_field_are_ignored() {
    let rules = set(&[]);
    let state = MemCorrelationState::default();
    let recs: Vec<Record> = (0..4)
        .map(|i| {
            let mut v: serde_json::Value =
                serde_json::from_str(record(&format!("n{i}"), i, ALICE, "X").as_json()).unwrap();
            v["userIdentity"] = json!({"type": "AWSService", "invokedBy": "ec2.amazonaws.com"});
            Record::from_value(&v).unwrap()
        })
        .collect();
    assert!(run(&rules, &state, &recs, 10).await.is_empty());
    assert!(state.is_empty());
}

#[tokio::test]
async fn out_of_order_and_duplicates_give_the_same_single_episode() {
    let rules = set(&[]);
    let recs: Vec<Record> = (0..6)
        .map(|i| record(&format!("e{i}"), i * 30, ALICE, "X"))
        .collect();
    let in_order = run(&rules, &MemCorrelationState::default(), &recs, 10).await;
    // late first events, one duplicate, one file at a time
    let shuffled: Vec<Record> = [4, 5, 2, 5, 3, 0, 1]
        .iter()
        .map(|&i| Record::from_json(recs[i].as_json().to_owned()).unwrap())
        .collect();
    let state = MemCorrelationState::default();
    let out_of_order = run(&rules, &state, &shuffled, 2).await;
    let ids = |v: &[Finding]| {
        v.iter()
            .map(|f| f.id.clone())
            .collect::<std::collections::BTreeSet<_>>()
    };
    assert_eq!(ids(&in_order).len(), 1);
    assert_eq!(ids(&out_of_order).len(), 1);
    // duplicates counted once: the bucket holds exactly the six distinct events
    let item = state
        .item(&StateKey {
            pk: format!("STATE#c-burst#{}", short_hash(ALICE, 16)),
            sk: ((1_794_999_600_i64).div_euclid(600) * 600).to_string(),
        })
        .unwrap();
    assert_eq!(item.len_of("e"), 6);
}

#[tokio::test]
async fn a_failed_state_call_is_retryable_and_the_retry_converges() {
    let rules = set(&[]);
    let state = MemCorrelationState::default();
    let recs: Vec<Record> = (0..3)
        .map(|i| record(&format!("e{i}"), i, ALICE, "X"))
        .collect();
    state.fail_next(vec![PortError::Transient {
        op: "UpdateItem",
        message: "throttled".into(),
    }]);
    let c = Correlator::new(&rules);
    let mut batch = Batch::default();
    for r in &recs {
        let mut m = Vec::new();
        rules.matches(r, &mut m);
        c.observe(&mut batch, r, &m, "t");
    }
    let err = c.flush(&state, batch).await.unwrap_err();
    assert!(err.is_retryable());
    let found = run(&rules, &state, &recs, 10).await;
    assert_eq!(found.len(), 1);
}

#[tokio::test]
async fn sets_are_bounded() {
    let rules = set(&[]);
    let state = MemCorrelationState::default();
    let recs: Vec<Record> = (0..100)
        .map(|i| record(&format!("e{i}"), i, ALICE, "X"))
        .collect();
    let found = run(&rules, &state, &recs, 10).await;
    assert!(!found.is_empty());
    let key = StateKey {
        pk: format!("STATE#c-burst#{}", short_hash(ALICE, 16)),
        sk: ((1_794_999_600_i64).div_euclid(600) * 600).to_string(),
    };
    let held = state.item(&key).unwrap().len_of("e");
    // cap = threshold 3 + margin 16, overshoot at most one flush's members
    assert!((19..=19 + 10).contains(&held), "{held}");
}

#[test]
fn unsupported_correlations_are_explained() {
    let upper_only = "title: few\nname: c-few\ncorrelation:\n  type: event_count\n  rules: [b-denied]\n  group-by: [userIdentity.arn]\n  timespan: 10m\n  condition: {lt: 3}\nlevel: low\n";
    let rules = set(&[("few.yml", upper_only)]);
    let c = Correlator::new(&rules);
    assert_eq!(c.correlation_ids().collect::<Vec<_>>(), ["c-burst"]);
    assert_eq!(c.warnings().len(), 1);
    assert!(
        c.warnings()[0].contains("no lower bound"),
        "{:?}",
        c.warnings()
    );
}

#[tokio::test]
async fn ratio_counts_shares_per_principal_and_day() {
    let ratio = ratio_rule(4, 50, 6);
    let rules = set(&[("any.yml", ACTIVITY), ("ratio.yml", &ratio)]);
    let c = Correlator::new(&rules);
    assert!(c.warnings().is_empty(), "{:?}", c.warnings());
    let state = MemCorrelationState::default();
    // bob: 4 denied of 10 (40%) -> no; alice: 4 denied of 7 (57%) -> yes
    let mut recs = Vec::new();
    for i in 0..4 {
        recs.push(record(&format!("bd{i}"), i * 100, BOB, "X"));
        recs.push(record(&format!("ad{i}"), i * 100, ALICE, "X"));
    }
    for i in 0..6 {
        recs.push(allowed(&format!("bo{i}"), 1000 + i, BOB));
    }
    for i in 0..3 {
        recs.push(allowed(&format!("ao{i}"), 1000 + i, ALICE));
    }
    let found: Vec<Finding> = run_with(&c, &rules, &state, &recs, 100)
        .await
        .into_iter()
        .filter(|f| f.rule_id == "c-ratio")
        .collect();
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].principal.as_deref(), Some(ALICE));
    assert!(
        found[0].title.contains("4 of 7 calls (57%)"),
        "{}",
        found[0].title
    );
}

/// A call by `who` that is not denied (only the ratio's denominator).
fn allowed(id: &str, secs: i64, who: &str) -> Record {
    let mut v: serde_json::Value =
        serde_json::from_str(record(id, secs, who, "GetUser").as_json()).unwrap();
    v.as_object_mut().unwrap().remove("errorCode");
    Record::from_value(&v).unwrap()
}

#[tokio::test]
async fn a_ratio_finding_shows_the_latest_numerator_call_else_the_earliest_call() {
    let ratio = ratio_rule(2, 10, 3);
    let rules = set(&[("any.yml", ACTIVITY), ("ratio.yml", &ratio)]);
    let shown = |found: Vec<Finding>| -> Vec<String> {
        found
            .into_iter()
            .filter(|f| f.rule_id == "c-ratio")
            .map(|f| f.event_id)
            .collect()
    };
    // one batch: the latest denied call, whatever the order the calls arrive in
    let calls = [
        allowed("x0", 0, ALICE),
        record("n0", 50, ALICE, "X"),
        allowed("x1", 100, ALICE),
        record("n1", 200, ALICE, "X"),
        allowed("x3", 300, ALICE),
    ];
    for rotate in 0..calls.len() {
        for reverse in [false, true] {
            let mut order: Vec<Record> = calls
                .iter()
                .map(|r| Record::from_json(r.as_json().to_owned()).unwrap())
                .collect();
            order.rotate_left(rotate);
            if reverse {
                order.reverse();
            }
            let state = MemCorrelationState::default();
            let found = run(&rules, &state, &order, order.len()).await;
            assert_eq!(shown(found), ["n1"], "rotate {rotate}, reverse {reverse}");
        }
    }
    // a batch without a denied call that makes the ratio hold shows its earliest call
    for later in [
        [allowed("y2", 900, ALICE), allowed("y1", 800, ALICE)],
        [allowed("y1", 800, ALICE), allowed("y2", 900, ALICE)],
    ] {
        let state = MemCorrelationState::default();
        let first = [record("n0", 50, ALICE, "X"), record("n1", 60, ALICE, "X")];
        assert!(shown(run(&rules, &state, &first, 2).await).is_empty());
        assert_eq!(shown(run(&rules, &state, &later, 2).await), ["y1"]);
    }
}

#[tokio::test]
async fn leaving_out_ratios_keeps_the_other_correlations_and_writes_no_ratio_state() {
    let ratio = ratio_rule(2, 10, 3);
    let rules = set(&[("any.yml", ACTIVITY), ("ratio.yml", &ratio)]);
    let (c, left_out) = Correlator::new(&rules).leaving_out_ratios();
    assert_eq!(left_out, ["c-ratio"]);
    assert_eq!(c.correlation_ids().collect::<Vec<_>>(), ["c-burst"]);
    let state = MemCorrelationState::default();
    let recs: Vec<Record> = (0..4)
        .map(|i| record(&format!("e{i}"), i * 60, ALICE, "X"))
        .collect();
    let found = run_with(&c, &rules, &state, &recs, 1).await;
    // the burst still fires (at the 3rd and 4th call); nothing of the ratio is written
    assert!(!found.is_empty());
    assert!(found.iter().all(|f| f.rule_id == "c-burst"), "{found:?}");
    let day = (1_794_999_600_i64).div_euclid(86_400) * 86_400;
    let ratio_key = StateKey {
        pk: Correlator::new(&rules).ratio_pk("c-ratio", ALICE).unwrap(),
        sk: day.to_string(),
    };
    assert!(state.item(&ratio_key).is_none());
    // the full correlator does write it
    let state = MemCorrelationState::default();
    run(&rules, &state, &recs, 1).await;
    assert!(state.item(&ratio_key).is_some());
}

#[tokio::test]
async fn ratios_counting_the_same_calls_share_one_item() {
    let rules = two_ratios();
    let c = Correlator::new(&rules);
    let pk = c.ratio_pk("c-ratio", ALICE).unwrap();
    assert_eq!(c.ratio_pk("c-list-ratio", ALICE).as_ref(), Some(&pk));
    let calls = [
        record("n0", 10, ALICE, "X"),
        record("n1", 20, ALICE, "X"),
        allowed("l0", 30, ALICE),
        allowed("x0", 40, ALICE),
        record("n2", 50, ALICE, "ListUsers"),
        allowed("x1", 60, ALICE),
    ];
    let calls: Vec<Record> = calls
        .iter()
        .map(|r| {
            let mut v: serde_json::Value = serde_json::from_str(r.as_json()).unwrap();
            if v["eventID"] == "l0" {
                v["eventName"] = json!("ListRoles");
            }
            Record::from_value(&v).unwrap()
        })
        .collect();
    let state = MemCorrelationState::default();
    let found = run_with(&c, &rules, &state, &calls, calls.len()).await;
    // denied: 3 of 6 (50 %) holds; listing: 2 of 6 (33 %) holds too, each with its own call
    let by_rule: std::collections::BTreeMap<&str, &Finding> = found
        .iter()
        .filter(|f| f.rule_id != "c-burst")
        .map(|f| (f.rule_id.as_str(), f))
        .collect();
    assert_eq!(by_rule.len(), 2, "{found:?}");
    assert!(
        by_rule["c-ratio"].title.contains("3 of 6 calls (50%)"),
        "{}",
        by_rule["c-ratio"].title
    );
    assert_eq!(by_rule["c-ratio"].event_id, "n2");
    assert!(
        by_rule["c-list-ratio"].title.contains("2 of 6 calls (33%)"),
        "{}",
        by_rule["c-list-ratio"].title
    );
    assert_eq!(by_rule["c-list-ratio"].event_id, "n2");
    // one item: every call once in `d`, one numerator set per correlation
    let day = (1_794_999_600_i64).div_euclid(86_400) * 86_400;
    let item = state
        .item(&StateKey {
            pk,
            sk: day.to_string(),
        })
        .unwrap();
    assert_eq!(item.len_of("d"), 6);
    assert_eq!(item.len_of(&c.ratio_set("c-ratio").unwrap()), 3);
    assert_eq!(item.len_of(&c.ratio_set("c-list-ratio").unwrap()), 2);
}

#[tokio::test]
async fn a_ratio_flush_beyond_the_cap_still_counts_the_numerator() {
    let ratio = ratio_rule(150, 80, 200);
    let rules = set(&[("any.yml", ACTIVITY), ("ratio.yml", &ratio)]);
    let state = MemCorrelationState::default();
    // one file of 2,500 denied calls by one principal: every call is in `d` and `n`
    let recs: Vec<Record> = (0..2500)
        .map(|i| record(&format!("e{i:05}"), i % 3600, ALICE, "X"))
        .collect();
    let found: Vec<Finding> = run(&rules, &state, &recs, 2500)
        .await
        .into_iter()
        .filter(|f| f.rule_id == "c-ratio")
        .collect();
    assert_eq!(found.len(), 1, "a flush beyond the cap lost the numerator");
    let key = StateKey {
        pk: Correlator::new(&rules).ratio_pk("c-ratio", ALICE).unwrap(),
        sk: ((1_794_999_600_i64).div_euclid(86_400) * 86_400).to_string(),
    };
    let item = state.item(&key).unwrap();
    let n = Correlator::new(&rules).ratio_set("c-ratio").unwrap();
    assert_eq!(item.len_of(&n), item.len_of("d"));
    assert!((RATIO_CAP..=RATIO_CAP + MEMBERS_PER_UPDATE).contains(&item.len_of("d")));
}

#[tokio::test]
async fn a_trimmed_ratio_batch_writes_what_an_untrimmed_flush_would() {
    let ratio = ratio_rule(150, 80, 200);
    let rules = set(&[("any.yml", ACTIVITY), ("ratio.yml", &ratio)]);
    let c = Correlator::new(&rules);
    // 12,000 calls by one principal in one file, every third one allowed
    let recs: Vec<Record> = (0..12_000)
        .map(|i| {
            let r = record(&format!("e{i:05}"), i % 3600, ALICE, "X");
            if i % 3 == 0 {
                let mut v: serde_json::Value = serde_json::from_str(r.as_json()).unwrap();
                v.as_object_mut().unwrap().remove("errorCode");
                Record::from_value(&v).unwrap()
            } else {
                r
            }
        })
        .collect();
    let mut batch = Batch::default();
    for r in &recs {
        let mut matched = Vec::new();
        rules.matches(r, &mut matched);
        c.observe(&mut batch, r, &matched, "test");
    }
    // the batch stays bounded: the ratio bucket (2 x 2,000 + 100) x 2 + 1,024 and six 10-minute
    // burst buckets (19 + 100) x 2 + 1,024 at most, not 12,000 x 2 + 8,000 denied members
    assert!(batch.members() <= 9_224 + 6 * 1_262, "{}", batch.members());
    let state = MemCorrelationState::default();
    c.flush(&state, batch).await.unwrap();
    let key = StateKey {
        pk: Correlator::new(&rules).ratio_pk("c-ratio", ALICE).unwrap(),
        sk: ((1_794_999_600_i64).div_euclid(86_400) * 86_400).to_string(),
    };
    let item = state.item(&key).unwrap();
    // what an untrimmed flush sends first: the smallest member strings of all 12,000 events
    let mut all: Vec<(String, bool)> = recs
        .iter()
        .map(|r| {
            let denied = r.str_at("errorCode").is_some();
            (short_hash(&r.event_id_or_digest(), 12), denied)
        })
        .collect();
    all.sort();
    let d: Vec<&str> = item.set("d").collect();
    assert!((RATIO_CAP..=RATIO_CAP + MEMBERS_PER_UPDATE).contains(&d.len()));
    let expected_d: Vec<&str> = all.iter().take(d.len()).map(|(m, _)| m.as_str()).collect();
    assert_eq!(d, expected_d);
    let expected_n: Vec<&str> = all
        .iter()
        .take(d.len())
        .filter(|(_, denied)| *denied)
        .map(|(m, _)| m.as_str())
        .collect();
    let n = Correlator::new(&rules).ratio_set("c-ratio").unwrap();
    assert_eq!(item.set(&n).collect::<Vec<_>>(), expected_n);
}

/// The in-memory state seen as a state whose calls may wait (as DynamoDB's do): the flush
/// keeps several groups in flight instead of going one by one.
struct InFlight(MemCorrelationState);

impl CorrelationState for InFlight {
    async fn add(&self, u: &StateUpdate) -> Result<StateItem, PortError> {
        self.0.add(u).await
    }
    async fn add_counting(&self, u: &StateUpdate, names: &[&str]) -> Result<SetSizes, PortError> {
        self.0.add_counting(u, names).await
    }
    async fn get(&self, k: &StateKey) -> Result<Option<StateItem>, PortError> {
        self.0.get(k).await
    }
    async fn claim(&self, k: &StateKey, e: Episode, x: i64) -> Result<Episode, PortError> {
        self.0.claim(k, e, x).await
    }
}

#[tokio::test]
async fn flushing_one_group_at_a_time_or_several_in_flight_finds_the_same() {
    const { assert!(MemCorrelationState::IMMEDIATE && !InFlight::IMMEDIATE) };
    let ratio = ratio_rule(3, 50, 4);
    let rules = set(&[("a.yml", ACTIVITY), ("r.yml", &ratio)]);
    let c = Correlator::new(&rules);
    // bursts and ratios of five principals (half their calls denied), in three batches
    let recs: Vec<Record> = (0..60)
        .map(|i| {
            let who = format!("arn:aws:iam::111122223333:user/u{}", i % 5);
            if i % 2 == 0 {
                record(&format!("e{i}"), (i as i64) * 5, &who, "X")
            } else {
                allowed(&format!("e{i}"), (i as i64) * 5, &who)
            }
        })
        .collect();
    let serial = MemCorrelationState::default();
    let parallel = InFlight(MemCorrelationState::default());
    let (mut a, mut b) = (Vec::new(), Vec::new());
    for chunk in recs.chunks(20) {
        let (mut ba, mut bb) = (Batch::default(), Batch::default());
        for r in chunk {
            let mut matched = Vec::new();
            rules.matches(r, &mut matched);
            c.observe(&mut ba, r, &matched, "test");
            c.observe(&mut bb, r, &matched, "test");
        }
        a.extend(c.flush(&serial, ba).await.unwrap());
        b.extend(c.flush(&parallel, bb).await.unwrap());
    }
    let view = |f: &[Finding]| {
        f.iter()
            .map(|f| format!("{} {} {} {}", f.id, f.rule_id, f.event_id, f.title))
            .collect::<Vec<_>>()
    };
    assert!(a.iter().any(|f| f.rule_id == "c-burst"), "{:?}", view(&a));
    assert!(a.iter().any(|f| f.rule_id == "c-ratio"), "{:?}", view(&a));
    assert_eq!(view(&a), view(&b));
    assert_eq!(serial.len(), parallel.0.len());
    assert_eq!(serial.updates(), parallel.0.updates());
}

#[tokio::test]
async fn a_window_over_two_buckets_fires_from_the_neighbour_at_the_threshold_only() {
    // `c-burst` needs 3 events in 600 s; buckets start at multiples of 600 s. One event per
    // flush, so the last flush's bucket alone never holds enough: the sizes read first (the
    // in-memory state) and the items read at once (a waiting state) must agree on when the
    // neighbours can complete a window.
    let rules = set(&[]);
    let c = Correlator::new(&rules);
    let times = |ts: &[i64]| -> Vec<Record> {
        ts.iter()
            .enumerate()
            .map(|(i, &t)| record(&format!("e{i}"), t, ALICE, "X"))
            .collect()
    };
    let cases: [(&[i64], bool); 4] = [
        // two in the bucket below, the third in the next one, within 600 s
        (&[590, 595, 605], true),
        // the third in the bucket below an earlier pair (arrives last)
        (&[605, 610, 590], true),
        // only two in any 600 s, though three are in two neighbouring buckets
        (&[0, 595, 1100], false),
        // two events, one bucket each
        (&[590, 605], false),
    ];
    for (ts, fires) in cases {
        let serial = MemCorrelationState::default();
        let waiting = InFlight(MemCorrelationState::default());
        let a = run_with(&c, &rules, &serial, &times(ts), 1).await;
        let mut b = Vec::new();
        for r in times(ts) {
            let mut batch = Batch::default();
            let mut matched = Vec::new();
            rules.matches(&r, &mut matched);
            c.observe(&mut batch, &r, &matched, "test");
            b.extend(c.flush(&waiting, batch).await.unwrap());
        }
        let ids = |f: &[Finding]| f.iter().map(|f| f.id.clone()).collect::<Vec<_>>();
        assert_eq!(!a.is_empty(), fires, "{ts:?}: {a:?}");
        assert_eq!(ids(&a), ids(&b), "{ts:?}");
    }
}

#[tokio::test]
async fn merged_batches_write_and_find_what_one_batch_would_in_fewer_updates() {
    let rules = two_ratios();
    let c = Correlator::new(&rules);
    // two principals over three "objects"; the shown calls (latest burst call, latest
    // numerator call, earliest call) are spread over different objects
    let objects: Vec<Vec<Record>> = vec![
        vec![
            record("a1", 10, ALICE, "X"),
            allowed("b1", 15, BOB),
            record("a2", 20, ALICE, "ListUsers"),
        ],
        vec![
            allowed("a0", 5, ALICE),
            record("b2", 30, BOB, "X"),
            record("a3", 40, ALICE, "X"),
        ],
        vec![
            record("b3", 50, BOB, "ListRoles"),
            record("a4", 60, ALICE, "ListGroups"),
            record("b4", 70, BOB, "X"),
            allowed("a5", 80, ALICE),
        ],
    ];
    let batch_of = |recs: &[Record]| {
        let mut batch = Batch::default();
        for r in recs {
            let mut matched = Vec::new();
            rules.matches(r, &mut matched);
            c.observe(&mut batch, r, &matched, "test");
        }
        batch
    };
    let all: Vec<Record> = objects
        .iter()
        .flatten()
        .map(|r| Record::from_json(r.as_json().to_owned()).unwrap())
        .collect();
    let one_state = MemCorrelationState::default();
    let (one, counted) = c.flush_counting(&one_state, batch_of(&all)).await.unwrap();
    // every update counted, and one claim per finding
    assert_eq!(counted.writes, one_state.updates() + one.len());
    assert!(counted.reads > 0);
    assert!(
        one.iter().any(|f| f.rule_id == "c-burst")
            && one.iter().any(|f| f.rule_id == "c-ratio")
            && one.iter().any(|f| f.rule_id == "c-list-ratio"),
        "{one:?}"
    );
    for order in [[0, 1, 2], [2, 1, 0], [1, 2, 0]] {
        let mut merged = Batch::default();
        for &i in &order {
            c.merge(&mut merged, batch_of(&objects[i]));
        }
        let single = batch_of(&all);
        assert_eq!(
            (merged.len(), merged.members()),
            (single.len(), single.members())
        );
        let state = MemCorrelationState::default();
        let found = c.flush(&state, merged).await.unwrap();
        assert_eq!(found, one, "merge order {order:?}");
        assert_eq!(state.updates(), one_state.updates());
    }
    // flushing object by object writes the same items in more updates
    let state = MemCorrelationState::default();
    for recs in &objects {
        c.flush(&state, batch_of(recs)).await.unwrap();
    }
    assert!(state.updates() > one_state.updates());
    let day = (1_794_999_600_i64).div_euclid(86_400) * 86_400;
    for who in [ALICE, BOB] {
        let key = StateKey {
            pk: c.ratio_pk("c-ratio", who).unwrap(),
            sk: day.to_string(),
        };
        assert_eq!(state.item(&key), one_state.item(&key));
    }
    // a ratio that holds on calls flushed earlier shows the merged batch's earliest call
    let carol = "arn:aws:iam::111122223333:user/carol";
    let first = [record("c0", 1, carol, "X"), record("c1", 2, carol, "X")];
    let later = [
        vec![allowed("c3", 90, carol)],
        vec![allowed("c2", 85, carol), allowed("c4", 95, carol)],
    ];
    for order in [[0, 1], [1, 0]] {
        let state = MemCorrelationState::default();
        c.flush(&state, batch_of(&first)).await.unwrap();
        let mut merged = Batch::default();
        for &i in &order {
            c.merge(&mut merged, batch_of(&later[i]));
        }
        let shown: Vec<String> = c
            .flush(&state, merged)
            .await
            .unwrap()
            .into_iter()
            .filter(|f| f.rule_id == "c-ratio")
            .map(|f| f.event_id)
            .collect();
        assert_eq!(shown, ["c2"], "merge order {order:?}");
    }
}

/// Alice's denied calls at `times` (seconds after the test epoch), ids `<prefix><time>`.
fn alice(prefix: &str, times: &[i64]) -> Vec<Record> {
    times
        .iter()
        .map(|&t| record(&format!("{prefix}{t}"), t, ALICE, "X"))
        .collect()
}

#[tokio::test]
async fn a_second_burst_after_the_first_episode_is_a_new_episode() {
    let rules = set(&[]);
    let state = MemCorrelationState::default();
    // a burst at 0..20 s, reported; then, in the next 600 s bucket (whose flush still reads
    // the first burst's bucket as a neighbour), a second burst starting after the first
    // episode's window [0, 600] ended
    let first: Vec<Record> = alice("a", &[0, 10, 20]);
    let second: Vec<Record> = alice("b", &[900, 910, 920]);
    let found = run(&rules, &state, &first, 3).await;
    let ids = |v: &[Finding]| {
        v.iter()
            .map(|f| f.id.clone())
            .collect::<std::collections::BTreeSet<_>>()
    };
    let episode = |start: i64| correlation_finding_id("c-burst", ALICE, 1_794_999_600 + start);
    assert_eq!(ids(&found), [episode(0)].into());
    let found = run(&rules, &state, &second, 3).await;
    assert_eq!(ids(&found), [episode(900)].into(), "{found:?}");
    assert_eq!(found[0].event_id, "b920");
    // a late event of the first burst makes no third episode: its window overlaps the first
    // episode, which the claim answers with (the findings table already holds it)
    let late = vec![record("a5", 5, ALICE, "X")];
    let found = run(&rules, &state, &late, 1).await;
    assert_eq!(ids(&found), [episode(0)].into(), "{found:?}");
    // both bursts in one flush, in a fresh state: both episodes
    let all: Vec<Record> = alice("e", &[0, 10, 20, 900, 910, 920]);
    let found = run(&rules, &MemCorrelationState::default(), &all, 6).await;
    assert_eq!(ids(&found), [episode(0), episode(900)].into(), "{found:?}");
}

#[tokio::test]
async fn an_event_outside_every_qualifying_window_reports_nothing() {
    let rules = set(&[]);
    let state = MemCorrelationState::default();
    let burst: Vec<Record> = alice("a", &[0, 10, 20]);
    assert_eq!(run(&rules, &state, &burst, 3).await.len(), 1);
    // one more event in the next bucket, 700 s after the burst began: no window holding it
    // qualifies, so the flush neither claims nor reports
    let lone = vec![record("c1", 700, ALICE, "X")];
    let found = run(&rules, &state, &lone, 1).await;
    assert!(found.is_empty(), "{found:?}");
}

#[tokio::test]
async fn a_window_after_the_claimed_episode_is_found_past_an_old_window() {
    let rules = set(&[]);
    let state = MemCorrelationState::default();
    let base = 1_794_999_600;
    // an episode claimed by a flush that saw part of the events: [base - 550, base + 50]
    let key = StateKey {
        pk: format!("STATE#c-burst#{}", short_hash(ALICE, 16)),
        sk: "EPISODE".into(),
    };
    let held = Episode {
        start: base - 550,
        end: base + 50,
    };
    state.claim(&key, held, i64::MAX).await.unwrap();
    let burst: Vec<Record> = alice("a", &[40, 60, 70]);
    let found = run(&rules, &state, &burst, 3).await;
    let episode = |start: i64| correlation_finding_id("c-burst", ALICE, start);
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].id, episode(held.start));
    // two events just past the window [40, 640]: the window [60, 660] holds them, starts
    // after the claimed episode ended and qualifies (4 events): a new episode
    let more: Vec<Record> = alice("b", &[650, 655]);
    let found = run(&rules, &state, &more, 2).await;
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0].id, episode(base + 60));
}

#[tokio::test]
async fn one_bucket_can_complete_two_episodes_in_one_flush() {
    let rules = set(&[]);
    let state = MemCorrelationState::default();
    let base = 1_794_999_600;
    let at = |ts: &[i64]| alice("e", ts);
    // two events late in the previous bucket: no window yet
    assert!(run(&rules, &state, &at(&[-590, -580]), 2).await.is_empty());
    // one flush of one bucket completes [-590, 10] (with the event at 5) and, after that
    // episode ended, [500, 1100]
    let found = run(&rules, &state, &at(&[5, 500, 510, 520]), 4).await;
    let ids: std::collections::BTreeSet<String> = found.iter().map(|f| f.id.clone()).collect();
    let episode = |start: i64| correlation_finding_id("c-burst", ALICE, base + start);
    assert_eq!(ids, [episode(-590), episode(500)].into(), "{found:?}");
    // each shows an event of its own window: the flush's latest (520) lies outside the
    // first, which shows the flush's earliest (5)
    let shown = |id: String| {
        found
            .iter()
            .find(|f| f.id == id)
            .map(|f| f.event_id.as_str())
    };
    assert_eq!(shown(episode(-590)), Some("e5"), "{found:?}");
    assert_eq!(shown(episode(500)), Some("e520"), "{found:?}");
}

#[tokio::test]
async fn a_retried_flush_reports_both_episodes_it_claimed_again() {
    let rules = set(&[]);
    let state = MemCorrelationState::default();
    let episode = |start: i64| correlation_finding_id("c-burst", ALICE, 1_794_999_600 + start);
    let both: std::collections::BTreeSet<String> = [episode(0), episode(900)].into();
    // one flush claims two episodes; say storing the first finding failed: the retry runs
    // the same flush on the claims it made and must report both again (same ids)
    let all: Vec<Record> = alice("e", &[0, 10, 20, 900, 910, 920]);
    for attempt in 0..2 {
        let found = run(&rules, &state, &all, 6).await;
        let ids: std::collections::BTreeSet<String> = found.iter().map(|f| f.id.clone()).collect();
        assert_eq!(ids, both, "attempt {attempt}: {found:?}");
        let shown: Vec<&str> = found.iter().map(|f| f.event_id.as_str()).collect();
        assert_eq!(shown.len(), 2);
        assert!(
            shown.contains(&"e20") && shown.contains(&"e920"),
            "{found:?}"
        );
    }
}

#[tokio::test]
async fn an_older_burst_delivered_after_a_newer_one_is_its_own_episode() {
    let rules = set(&[]);
    let state = MemCorrelationState::default();
    let episode = |start: i64| correlation_finding_id("c-burst", ALICE, 1_794_999_600 + start);
    // the later burst's file arrives first (delivery is not in log order)
    let found = run(&rules, &state, &alice("b", &[900, 910, 920]), 3).await;
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].id, episode(900));
    // the earlier burst, disjoint from the claimed episode, is reported under its own id
    let found = run(&rules, &state, &alice("a", &[0, 10, 20]), 3).await;
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0].id, episode(0));
    // and a late event of it is that episode again
    let found = run(&rules, &state, &alice("c", &[30]), 1).await;
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0].id, episode(0));
}

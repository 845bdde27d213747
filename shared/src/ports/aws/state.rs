//! [`DynamoDbCorrelationState`]: correlation state and alert groups in the findings table.
//!
//! One `UpdateItem` per [`StateUpdate`]: `ADD <set> :members` (string sets deduplicate, so
//! a redelivered event is one member), `SET <k> = if_not_exists(<k>, :v)` for first-writer
//! scalars, `SET expires_at = :ttl`, with the condition `attribute_not_exists(<set>) OR
//! size(<set>) < :cap` on every touched set and `ReturnValues = ALL_NEW`, so the caller
//! learns the item's new state in the same call. A refused update returns the stored item
//! through `ReturnValuesOnConditionCheckFailure = ALL_OLD` (a consistent `GetItem` is the
//! fallback). The two neighbours of a bucket are read with one strongly consistent `Query`
//! on the sort-key range between them. Episodes are one item per group (`sk = EPISODE`)
//! holding the group's latest episodes (`ep_hist`, start and end pairs; `ep_start`/`ep_end`
//! the latest one) and a version `ep_n`: a claim reads the item (consistently), decides
//! ([`decide_claim`]) and, for a new episode, writes the history back on the condition that
//! the version is unchanged, reading again when another claim came first. Every name goes
//! through `ExpressionAttributeNames` (`group` is a reserved word).

use super::classify::classify;
use crate::ports::state::{
    decide_claim, ClaimOutcome, CorrelationState, Episode, Member, StateItem, StateKey, StateUpdate,
};
use crate::ports::PortError;
use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValue, ReturnValuesOnConditionCheckFailure};
use std::collections::{BTreeSet, HashMap};

/// Correlation state in the findings table.
#[derive(Debug, Clone)]
pub struct DynamoDbCorrelationState {
    client: aws_sdk_dynamodb::Client,
    table: String,
}

type Item = HashMap<String, AttributeValue>;

fn key_of(k: &StateKey) -> Item {
    HashMap::from([
        ("pk".to_owned(), AttributeValue::S(k.pk.clone())),
        ("sk".to_owned(), AttributeValue::S(k.sk.clone())),
    ])
}

/// Sets become [`StateItem::sets`], strings and numbers [`StateItem::scalars`].
fn state_of(item: &Item) -> StateItem {
    let mut out = StateItem::default();
    for (k, v) in item {
        match v {
            AttributeValue::Ss(members) => {
                out.sets
                    .insert(k.clone(), members.iter().cloned().collect());
            }
            AttributeValue::S(s) | AttributeValue::N(s) if k != "pk" && k != "sk" => {
                out.scalars.insert(k.clone(), s.clone());
            }
            _ => {}
        }
    }
    out
}

/// The number attribute `k` of `item` as an `i64`.
fn number(item: &Item, k: &str) -> Option<i64> {
    item.get(k)?.as_n().ok()?.parse().ok()
}

fn episode_of(item: &Item) -> Option<Episode> {
    Some(Episode {
        start: number(item, "ep_start")?,
        end: number(item, "ep_end")?,
    })
}

/// The episodes of an episode item, by start: its `ep_hist` or, on an item claimed before
/// the history was kept, its one `ep_start`/`ep_end` (an `ep_hist` that does not read as
/// pairs of numbers counts as absent).
fn episodes_of(item: &Item) -> Vec<Episode> {
    let pairs = item
        .get("ep_hist")
        .and_then(|v| v.as_l().ok())
        .and_then(|l| {
            let nums: Option<Vec<i64>> = l.iter().map(|v| v.as_n().ok()?.parse().ok()).collect();
            nums.filter(|n| n.len() % 2 == 0)
        });
    match pairs {
        Some(nums) => {
            let mut all: Vec<Episode> = nums
                .chunks_exact(2)
                .map(|p| Episode {
                    start: p[0],
                    end: p[1],
                })
                .collect();
            all.sort_by_key(|e| (e.start, e.end));
            all
        }
        None => episode_of(item).into_iter().collect(),
    }
}

/// How often a claim reads and tries again when another claim of the group wrote between
/// its read and its write.
const CLAIM_ATTEMPTS: usize = 8;

/// Whether the items of `below.pk` between the two sort keys are the buckets between them,
/// in number order: one partition, and both sort keys decimal digits of one length (then
/// DynamoDB's string order is the number order, and `EPISODE` sorts after every bucket).
/// Bucket starts have ten digits from 2001 to 2286; others read the two items one by one.
fn one_range(below: &StateKey, above: &StateKey) -> bool {
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    below.pk == above.pk
        && below.sk.len() == above.sk.len()
        && digits(&below.sk)
        && digits(&above.sk)
        && below.sk < above.sk
}

impl DynamoDbCorrelationState {
    /// State over `table` (the findings table).
    pub fn new(client: aws_sdk_dynamodb::Client, table: impl Into<String>) -> Self {
        DynamoDbCorrelationState {
            client,
            table: table.into(),
        }
    }

    async fn read(&self, key: &StateKey) -> Result<Option<Item>, PortError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(key_of(key)))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| classify("GetItem", e))?;
        Ok(out.item)
    }
}

impl CorrelationState for DynamoDbCorrelationState {
    async fn add(&self, u: &StateUpdate) -> Result<StateItem, PortError> {
        let mut names: HashMap<String, String> = HashMap::new();
        let mut values: HashMap<String, AttributeValue> = HashMap::new();
        let mut adds = Vec::new();
        let mut sets = vec!["#ttl = :ttl".to_owned()];
        let mut conds = Vec::new();
        names.insert("#ttl".into(), "expires_at".into());
        values.insert(":ttl".into(), AttributeValue::N(u.expires_at.to_string()));
        for (i, (set, members)) in u.add.iter().enumerate() {
            if members.is_empty() {
                continue;
            }
            names.insert(format!("#s{i}"), set.clone());
            // a string set must not list a member twice
            let rendered: BTreeSet<String> = members.iter().map(Member::render).collect();
            values.insert(
                format!(":s{i}"),
                AttributeValue::Ss(rendered.into_iter().collect()),
            );
            adds.push(format!("#s{i} :s{i}"));
            conds.push(format!(
                "(attribute_not_exists(#s{i}) OR size(#s{i}) < :cap)"
            ));
        }
        for (i, (k, v)) in u.set_if_absent.iter().enumerate() {
            names.insert(format!("#f{i}"), k.clone());
            values.insert(format!(":f{i}"), AttributeValue::S(v.clone()));
            sets.push(format!("#f{i} = if_not_exists(#f{i}, :f{i})"));
        }
        for (i, (k, v)) in u.set.iter().enumerate() {
            names.insert(format!("#w{i}"), k.clone());
            values.insert(format!(":w{i}"), AttributeValue::S(v.clone()));
            sets.push(format!("#w{i} = :w{i}"));
        }
        let mut expr = format!("SET {}", sets.join(", "));
        if !adds.is_empty() {
            expr.push_str(&format!(" ADD {}", adds.join(", ")));
        }
        let mut req = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key_of(&u.key)))
            .update_expression(expr)
            .return_values(ReturnValue::AllNew)
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld);
        if !conds.is_empty() {
            values.insert(":cap".into(), AttributeValue::N(u.cap.to_string()));
            req = req.condition_expression(conds.join(" AND "));
        }
        let r = req
            .set_expression_attribute_names(Some(names))
            .set_expression_attribute_values(Some(values))
            .send()
            .await;
        match r {
            Ok(out) => Ok(out.attributes.as_ref().map(state_of).unwrap_or_default()),
            Err(e) => {
                if let Some(UpdateItemError::ConditionalCheckFailedException(c)) =
                    e.as_service_error()
                {
                    let old = match c.item() {
                        Some(item) => Some(item.clone()),
                        None => self.read(&u.key).await?,
                    };
                    let mut state = old.as_ref().map(state_of).unwrap_or_default();
                    state.full = true;
                    return Ok(state);
                }
                Err(classify("UpdateItem", e))
            }
        }
    }

    async fn get(&self, key: &StateKey) -> Result<Option<StateItem>, PortError> {
        Ok(self.read(key).await?.as_ref().map(state_of))
    }

    async fn get_pair(
        &self,
        below: &StateKey,
        above: &StateKey,
    ) -> Result<(Option<StateItem>, Option<StateItem>), PortError> {
        if !one_range(below, above) {
            return Ok((self.get(below).await?, self.get(above).await?));
        }
        // one strongly consistent Query over [below, above]: the bucket between them comes
        // back too (key attributes cannot be filtered) and is skipped; small items cost one
        // read unit where two GetItems cost two, and one round trip instead of two
        let mut found = (None, None);
        let mut start: Option<Item> = None;
        loop {
            let page = self
                .client
                .query()
                .table_name(&self.table)
                .consistent_read(true)
                .key_condition_expression("pk = :pk AND sk BETWEEN :lo AND :hi")
                .expression_attribute_values(":pk", AttributeValue::S(below.pk.clone()))
                .expression_attribute_values(":lo", AttributeValue::S(below.sk.clone()))
                .expression_attribute_values(":hi", AttributeValue::S(above.sk.clone()))
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(|e| classify("Query", e))?;
            for item in page.items() {
                match item.get("sk").and_then(|v| v.as_s().ok()) {
                    Some(sk) if *sk == below.sk => found.0 = Some(state_of(item)),
                    Some(sk) if *sk == above.sk => found.1 = Some(state_of(item)),
                    _ => {}
                }
            }
            match page.last_evaluated_key() {
                Some(k) if !k.is_empty() => start = Some(k.clone()),
                _ => break,
            }
        }
        Ok(found)
    }

    async fn claim(
        &self,
        key: &StateKey,
        wanted: Episode,
        expires_at: i64,
    ) -> Result<Episode, PortError> {
        let n = |v: i64| AttributeValue::N(v.to_string());
        for _ in 0..CLAIM_ATTEMPTS {
            let item = self.read(key).await?;
            let held = item.as_ref().map(episodes_of).unwrap_or_default();
            let all = match decide_claim(&held, wanted) {
                ClaimOutcome::Held(episode) => return Ok(episode),
                ClaimOutcome::Claimed(all) => all,
            };
            let latest = all.last().copied().unwrap_or(wanted);
            let stored = |k: &str| item.as_ref().and_then(|i| number(i, k));
            // the write holds only if nothing changed since the read: the version, or on an
            // item without one (absent, or claimed before versions) what the read saw
            let mut req = self
                .client
                .update_item()
                .table_name(&self.table)
                .set_key(Some(key_of(key)))
                .update_expression(
                    "SET ep_hist = :h, ep_start = :s, ep_end = :e, ep_n = :n, expires_at = :x",
                )
                .expression_attribute_values(
                    ":h",
                    AttributeValue::L(all.iter().flat_map(|e| [n(e.start), n(e.end)]).collect()),
                )
                .expression_attribute_values(":s", n(latest.start))
                .expression_attribute_values(":e", n(latest.end))
                .expression_attribute_values(
                    ":x",
                    n(expires_at.max(stored("expires_at").unwrap_or(i64::MIN))),
                );
            req = match (stored("ep_n"), item.as_ref().and_then(episode_of)) {
                (Some(version), _) => req
                    .condition_expression("ep_n = :v")
                    .expression_attribute_values(":v", n(version))
                    .expression_attribute_values(":n", n(version.saturating_add(1))),
                (None, Some(old)) => req
                    .condition_expression(
                        "attribute_not_exists(ep_n) AND ep_start = :os AND ep_end = :oe",
                    )
                    .expression_attribute_values(":os", n(old.start))
                    .expression_attribute_values(":oe", n(old.end))
                    .expression_attribute_values(":n", n(1)),
                (None, None) => req
                    .condition_expression(
                        "attribute_not_exists(ep_n) AND attribute_not_exists(ep_end)",
                    )
                    .expression_attribute_values(":n", n(1)),
            };
            match req.send().await {
                Ok(_) => return Ok(wanted),
                Err(e) => {
                    if let Some(UpdateItemError::ConditionalCheckFailedException(_)) =
                        e.as_service_error()
                    {
                        // another claim of this group wrote first: decide again on what it wrote
                        continue;
                    }
                    return Err(classify("UpdateItem", e));
                }
            }
        }
        Err(PortError::Transient {
            op: "UpdateItem",
            message: format!(
                "episode claim lost the race with other claims of {} {CLAIM_ATTEMPTS} times",
                key.pk
            ),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn items_map_to_sets_and_scalars() {
        let item: Item = HashMap::from([
            ("pk".to_owned(), AttributeValue::S("STATE#c#g".into())),
            ("sk".to_owned(), AttributeValue::S("0".into())),
            (
                "e".to_owned(),
                AttributeValue::Ss(vec!["1|a".into(), "2|b".into()]),
            ),
            ("leader".to_owned(), AttributeValue::S("f1".into())),
            ("expires_at".to_owned(), AttributeValue::N("99".into())),
            ("ep_start".to_owned(), AttributeValue::N("10".into())),
            ("ep_end".to_owned(), AttributeValue::N("20".into())),
        ]);
        let s = state_of(&item);
        assert_eq!(s.len_of("e"), 2);
        assert_eq!(s.scalars["leader"], "f1");
        assert!(!s.scalars.contains_key("pk"));
        assert_eq!(episode_of(&item), Some(Episode { start: 10, end: 20 }));
    }

    #[test]
    fn neighbours_are_one_range_only_when_string_order_is_number_order() {
        let k = |pk: &str, sk: &str| StateKey {
            pk: pk.into(),
            sk: sk.into(),
        };
        assert!(one_range(&k("p", "1794999000"), &k("p", "1795000200")));
        // another partition, digit counts that differ, negative or reversed buckets
        assert!(!one_range(&k("p", "1794999000"), &k("q", "1795000200")));
        assert!(!one_range(&k("p", "999999600"), &k("p", "1000000800")));
        assert!(!one_range(&k("p", "-600"), &k("p", "600")));
        assert!(!one_range(&k("p", "1795000200"), &k("p", "1794999000")));
        assert!(!one_range(&k("p", ""), &k("p", "")));
    }
}

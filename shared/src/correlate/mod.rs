//! Stateful detections: Sigma correlation rules (`event_count`, `value_count`, `temporal`,
//! `temporal_ordered`, and our `trailwatch.ratio` extension parsed by the engine) evaluated over state kept
//! behind the [`CorrelationState`] port (DynamoDB in Lambda, memory in the CLI).
//!
//! Owns: which base-rule matches feed which correlation, the state layout, the window
//! semantics and the correlation finding. It does not match rules (the pipeline does and
//! hands over the matched rules) and does not store or alert findings (delivery does).
//!
//! Windows (see `docs/correlations.md`): observations are stored in fixed buckets of one
//! timespan, keyed `pk = STATE#<correlation id>#<group hash>`, `sk = <bucket start>`. Each
//! member carries its event time, so after an update the bucket and its two neighbours give
//! every observation that can share a window with the new ones, and [`window`] looks for
//! the earliest sliding window in which the condition holds, then for the earliest one
//! after that window's episode, and so on; windows holding none of the flush's observations
//! are skipped (the flush that completed them reported them). The verdict is a function of
//! the set of observations: arrival order and duplicates do not change it (a redelivered
//! event is the same set member). When a window qualifies, the group claims an *episode*
//! (`sk = EPISODE`, see [`CorrelationState::claim`]); the finding id derives from
//! (correlation, group, episode start), so every invocation that sees the same burst
//! produces the same finding and the findings table stores and alerts it once. Ratio rules
//! use one bucket per timespan (24 h in the pack: UTC days) and no neighbours; ratios that
//! count the same calls share one item per group and bucket (`Family`: `d` once, a
//! numerator set each).
//!
//! Bounds: a bucket's set refuses members once it holds the firing threshold plus a margin
//! (a bucket is shorter than a window, so by then the condition has held); `value_count`
//! times are rounded to 1/8 and temporal times to 1/16 of the timespan so one repeated
//! value or step cannot fill a bucket; ratio buckets stop at [`RATIO_CAP`] events.

pub mod window;

use crate::detect::{CorrelationRule, CorrelationType, Event, Rule, RuleSet, ValueRef};
use crate::findings::{finding_id, Finding};
use crate::model::Record;
use crate::ports::state::{
    CorrelationState, Episode, Member, SetSizes, StateItem, StateKey, StateUpdate,
};
use crate::ports::PortError;
use futures::stream::{self, StreamExt, TryStreamExt};
use serde_json::Value;
use sha2::{Digest, Sha256};
use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Arc;

/// Members sent in one state update (keeps each `UpdateItem` small).
pub const MEMBERS_PER_UPDATE: usize = 100;
/// Extra members a bucket accepts beyond the firing threshold.
pub const CAP_MARGIN: usize = 16;
/// Most events a ratio bucket counts (the verdict covers the first this many).
pub const RATIO_CAP: usize = 2000;
/// State updates in flight during one flush.
pub const MAX_IN_FLIGHT: usize = 8;
/// How long state outlives its window (late deliveries, retries).
pub const STATE_GRACE_SECS: i64 = 2 * 86_400;
/// Longest value kept for `value_count` (bytes, cut at a character boundary).
pub const MAX_VALUE_BYTES: usize = 256;

/// A correlation's state could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum CorrelateError {
    /// A state call failed.
    #[error("correlation state of {correlation}")]
    State {
        /// The correlation rule.
        correlation: String,
        /// What the port said.
        #[source]
        source: PortError,
    },
}

impl CorrelateError {
    /// Whether retrying the invocation may succeed (throttling, 5xx, timeouts).
    pub fn is_retryable(&self) -> bool {
        match self {
            CorrelateError::State { source, .. } => source.is_retryable(),
        }
    }
}

#[derive(Debug, Clone)]
enum Shape {
    Count,
    Values,
    Temporal {
        ordered: bool,
    },
    Ratio {
        numerator: Vec<bool>,
        min_percent: u64,
        min_total: u64,
    },
}

type Path = Vec<Box<str>>;

#[derive(Debug, Clone)]
struct Plan {
    rule: CorrelationRule,
    shape: Shape,
    /// Per step: the group-by paths (aliases resolved).
    group_paths: Vec<Vec<Path>>,
    /// Per step: an id shared by every (plan, step) grouping by the same paths, so a
    /// record's group text is computed once for all of them.
    group_ids: Vec<usize>,
    /// Per step: the counted field (`value_count`).
    value_paths: Vec<Option<Path>>,
    threshold: u64,
    span: i64,
    cap: usize,
    /// Most members of one bucket a flush can send: it stops after the update in which a set
    /// reaches `cap` (every earlier update found each set below it), so at most `cap` per
    /// set plus one update. A batch keeps no more than this (in flush order), which bounds
    /// its memory without changing what is written when the state had none of them yet.
    keep: usize,
    /// Ratio plans: (family, member index) (see [`Family`]).
    family: Option<(usize, usize)>,
    /// The sets of a bucket holding the observations [`evaluate`] reads (none for ratios,
    /// whose family's flush reads set sizes).
    observed: Vec<String>,
}

/// Ratio correlations that count the same calls: the same denominator building blocks,
/// grouped by the same fields over the same timespan (the bundled enumeration and
/// privilege-escalation ratios). They share one state item per group and bucket: the
/// denominator set `d` once, one numerator set per correlation. Half the updates and half
/// the DynamoDB write units of an item per correlation.
#[derive(Debug, Clone)]
struct Family {
    /// The plans, in member order.
    plans: Vec<usize>,
    /// `ratio-<hash of the denominator, grouping and timespan>`: the state key's prefix.
    id: String,
    /// The member correlations' ids, joined (the item's `correlation` scalar).
    label: String,
    /// Per member: its numerator set's name, `n_<hash of the correlation id>`.
    sets: Vec<String>,
    /// As [`Plan::keep`]: `d` and every numerator set.
    keep: usize,
}

impl Plan {
    /// Whether buckets whose [`Plan::observed`] sets hold `sizes` members (one slice per
    /// bucket, a size per set) could hold a window in which the condition holds: a count
    /// or distinct-value window needs at least the threshold in observations, a temporal
    /// one every step at least once.
    fn could_hold(&self, sizes: &[&[usize]]) -> bool {
        let total =
            |set: usize| -> usize { sizes.iter().map(|s| s.get(set).copied().unwrap_or(0)).sum() };
        match self.shape {
            Shape::Count | Shape::Values => total(0) as u64 >= self.threshold,
            Shape::Temporal { .. } => (0..self.observed.len()).all(|s| total(s) > 0),
            Shape::Ratio { .. } => true,
        }
    }

    /// The step its members' times are rounded down to (see [`Correlator::observe`]).
    fn time_step(&self) -> i64 {
        match self.shape {
            Shape::Values => self.span / 8,
            Shape::Temporal { .. } => self.span / 16,
            Shape::Count | Shape::Ratio { .. } => 1,
        }
    }
}

fn split(path: &str) -> Path {
    path.split('.').map(Box::from).collect()
}

/// The correlation rules of a rule set, prepared for streaming evaluation.
#[derive(Debug, Default, Clone)]
pub struct Correlator {
    plans: Vec<Plan>,
    /// Base rule id -> (plan, step) it feeds.
    by_rule: hashbrown::HashMap<String, Vec<(usize, usize)>>,
    /// Ratio plans sharing state (slot ids `plans.len() + family`).
    families: Vec<Family>,
    warnings: Vec<String>,
    /// State expiry in log time (see [`Correlator::expiring_in_log_time`]).
    log_time_expiry: bool,
}

impl Correlator {
    /// Prepare every correlation of `rules`. Correlations this evaluator cannot run
    /// (a condition with only an upper bound, a reference to another correlation) are left
    /// out and explained in [`Correlator::warnings`].
    pub fn new(rules: &RuleSet) -> Correlator {
        let mut c = Correlator::default();
        let mut distinct: Vec<Vec<Path>> = Vec::new();
        for corr in rules.correlations() {
            match plan(corr, rules) {
                Ok(mut p) => {
                    p.group_ids = p
                        .group_paths
                        .iter()
                        .map(|paths| match distinct.iter().position(|d| d == paths) {
                            Some(id) => id,
                            None => {
                                distinct.push(paths.clone());
                                distinct.len() - 1
                            }
                        })
                        .collect();
                    c.plans.push(p);
                }
                Err(why) => c
                    .warnings
                    .push(format!("{} ({}:{}): {why}", corr.id, corr.file, corr.line)),
            }
        }
        c.by_rule = by_rule(&c.plans);
        c.families = families(&mut c.plans, &distinct);
        c
    }

    /// Give state items an `expires_at` in log time, `bucket + 2 × timespan + grace`: the
    /// time after which no event delivered up to [`STATE_GRACE_SECS`] late can touch them.
    /// For a scan that reads logs in time order and drops expired state as it goes (the
    /// CLI); the default, wall-clock expiry suits a TTL (logs replayed months later must not
    /// expire at once).
    pub fn expiring_in_log_time(mut self) -> Correlator {
        self.log_time_expiry = true;
        self
    }

    /// Leave out the ratio correlations (`trailwatch.ratio`): for the event-handler. A ratio
    /// counts every call of a principal over a day, so on the per-event path it costs a state
    /// update of a growing item for nearly every event (DynamoDB bills an update by the
    /// item's size: ~3 write units per event on the bench corpus), while the event-handler
    /// sees only part of the calls (write events, by default) and the log-processor counts
    /// all of them minutes later, which a day-long window does not notice.
    /// Returns the correlator and the ids left out.
    pub fn leaving_out_ratios(self) -> (Correlator, Vec<String>) {
        let (ratios, plans): (Vec<Plan>, Vec<Plan>) = self
            .plans
            .into_iter()
            .partition(|p| matches!(p.shape, Shape::Ratio { .. }));
        let kept = Correlator {
            by_rule: by_rule(&plans),
            plans,
            families: Vec::new(),
            warnings: self.warnings,
            log_time_expiry: self.log_time_expiry,
        };
        (kept, ratios.into_iter().map(|p| p.rule.id).collect())
    }

    /// The state key of ratio correlation `id`'s item for `group` (tests).
    #[cfg(test)]
    fn ratio_pk(&self, id: &str, group: &str) -> Option<String> {
        let p = self.plans.iter().find(|p| p.rule.id == id)?;
        let fam = self.families.get(p.family?.0)?;
        Some(state_pk(&fam.id, &short_hash(group, 16)))
    }

    /// The name of ratio correlation `id`'s numerator set in its family's item (tests).
    #[cfg(test)]
    fn ratio_set(&self, id: &str) -> Option<String> {
        let p = self.plans.iter().find(|p| p.rule.id == id)?;
        let (f, member) = p.family?;
        self.families.get(f)?.sets.get(member).cloned()
    }

    /// Why some correlations are not evaluated.
    pub fn warnings(&self) -> &[String] {
        &self.warnings
    }

    /// Ids of the correlations evaluated.
    pub fn correlation_ids(&self) -> impl Iterator<Item = &str> {
        self.plans.iter().map(|p| p.rule.id.as_str())
    }

    /// Whether no correlation is evaluated (callers can skip the state entirely).
    pub fn is_empty(&self) -> bool {
        self.plans.is_empty()
    }

    /// Note what `record` contributes, given the rules it matched (all of them, including
    /// correlation-only building blocks). CPU only; [`Correlator::flush`] writes the state.
    pub fn observe(&self, batch: &mut Batch, record: &Record, matched: &[&Rule], source: &str) {
        if self.plans.is_empty() || matched.is_empty() {
            return;
        }
        let Some(time) = record.event_time().map(|t| t.unix_timestamp()) else {
            return;
        };
        let event_id = match record.event_id() {
            Some(id) => Cow::Borrowed(id),
            None => Cow::Owned(record.event_id_or_digest()),
        };
        let hash = hash48(&event_id);
        let source = batch.source(source);
        let mut scratch = std::mem::take(&mut batch.scratch);
        // one context per record, shared by every group it feeds (most records feed several)
        let mut context: Option<Arc<Context>> = None;
        // what the record feeds, by group-by: its group is then computed and found once for
        // every correlation grouping by the same fields (most group by `userIdentity.arn`)
        scratch.todo.clear();
        scratch.counted_d.clear();
        for rule in matched {
            for &(pi, step) in self.by_rule.get(&rule.id).into_iter().flatten() {
                if let Some(&gid) = self.plans.get(pi).and_then(|p| p.group_ids.get(step)) {
                    scratch.todo.push((gid, pi, step));
                }
            }
        }
        scratch.todo.sort_by_key(|&(gid, ..)| gid);
        for run in scratch.todo.chunk_by(|a, b| a.0 == b.0) {
            let Some(&(gid, first_plan, first_step)) = run.first() else {
                continue;
            };
            let Some(paths) = self
                .plans
                .get(first_plan)
                .and_then(|p| p.group_paths.get(first_step))
            else {
                continue;
            };
            if !group_key(paths, record, &mut scratch.group) {
                continue;
            }
            let Batch { groups, held, .. } = &mut *batch;
            if groups.len() <= gid {
                groups.resize_with(gid + 1, Default::default);
            }
            let Some(slots) = groups
                .get_mut(gid)
                .map(|g| g.entry_ref(scratch.group.as_str()).or_default())
            else {
                continue;
            };
            for &(_, pi, step) in run {
                let Some(p) = self.plans.get(pi) else {
                    continue;
                };
                let bucket = time.div_euclid(p.span) * p.span;
                let members = &mut scratch.members;
                members.clear();
                match &p.shape {
                    Shape::Count => members.push((Set::E, Member::Timed(time, hash))),
                    Shape::Values => {
                        let Some(path) = p.value_paths.get(step).and_then(Option::as_ref) else {
                            continue;
                        };
                        let slot = round_down(time, p.time_step());
                        let mut vals = Vec::new();
                        record.values_at(path, &mut vals);
                        for v in &vals {
                            if let Some(text) = scalar(v) {
                                let text = cut(&text);
                                let mut m = String::with_capacity(21 + text.len());
                                let _ = write!(m, "{slot}|");
                                m.push_str(&text);
                                members.push((Set::V, Member::from(m)));
                            }
                        }
                    }
                    Shape::Temporal { .. } => {
                        let step = u16::try_from(step).unwrap_or(u16::MAX);
                        let slot = round_down(time, p.time_step());
                        members.push((Set::Step(step), Member::Int(slot)));
                    }
                    Shape::Ratio { numerator, .. } => {
                        let member = p.family.map_or(0, |(_, m)| m);
                        if numerator.get(step).copied().unwrap_or(false) {
                            let k = u16::try_from(member).unwrap_or(u16::MAX);
                            members.push((Set::N(k), Member::Hash(hash)));
                        }
                        members.push((Set::D, Member::Hash(hash)));
                    }
                }
                if members.is_empty() {
                    continue;
                }
                // a ratio family's members share one slot (see `Family`), which weighs as
                // much as theirs would in the batch's size
                let slot_id = p
                    .family
                    .filter(|&(f, _)| f < self.families.len())
                    .map_or(pi, |(f, _)| self.plans.len() + f);
                let (weight, keep, _) = self.slot_kind(slot_id);
                let at = match slots
                    .iter()
                    .position(|s| (s.plan, s.bucket) == (slot_id, bucket))
                {
                    Some(at) => at,
                    None => {
                        // most groups feed one or two correlations: no doubling for them
                        if slots.len() < 4 {
                            slots.reserve_exact(1);
                        }
                        slots.push(Slot {
                            plan: slot_id,
                            bucket,
                            pending: Pending::default(),
                        });
                        *held += weight;
                        slots.len() - 1
                    }
                };
                let Some(pending) = slots.get_mut(at).map(|s| &mut s.pending) else {
                    continue;
                };
                if let Some((f, _)) = p.family {
                    // the family's other ratios already counted this call in `d`
                    if scratch.counted_d.contains(&(f, bucket)) {
                        members.retain(|(set, _)| *set != Set::D);
                    } else {
                        scratch.counted_d.push((f, bucket));
                    }
                }
                if pending.members.len() < 4 {
                    // most groups of a busy file see a few events: no doubling for them
                    pending.members.reserve_exact(members.len());
                }
                pending.members.append(members);
                let mut context_of = || {
                    context
                        .get_or_insert_with(|| {
                            let reuse = scratch.spare.pop();
                            Arc::new(Context::of(record, &event_id, source.clone(), reuse))
                        })
                        .clone()
                };
                // a ratio finding shows the call that counts: its correlation's latest
                // numerator call, else the earliest call (the context is then built once
                // per group and batch, not for every call of every principal)
                let old = match (&p.shape, p.family) {
                    (Shape::Ratio { numerator, .. }, Some((_, member))) => {
                        let replaced = match numerator.get(step) {
                            Some(true) => {
                                pending.offer_numerator(member, time, &event_id, &mut context_of)
                            }
                            _ => None,
                        };
                        [
                            replaced,
                            pending.offer(time, &event_id, Role::Earliest, context_of),
                        ]
                    }
                    _ => [
                        pending.offer_first(time, &event_id, &mut context_of),
                        pending.offer(time, &event_id, Role::Latest, context_of),
                    ],
                };
                // a context no group holds any more keeps its buffer for a later record
                for c in old
                    .into_iter()
                    .flatten()
                    .filter_map(|c| Arc::try_unwrap(c).ok())
                {
                    if scratch.spare.len() < 4 {
                        scratch.spare.push(c);
                    }
                }
                pending.bound(keep);
            }
        }
        batch.scratch = scratch;
    }

    /// Add what `from` observed to `into`, as if its records had been observed into `into`:
    /// a flush of the merged batch writes what flushing both would, in one update per group
    /// where both saw the same group (the log-processor flushes once per invocation, not once
    /// per object). Which observation a finding shows does not depend on the order of merging.
    pub fn merge(&self, into: &mut Batch, from: Batch) {
        if into.groups.is_empty() {
            let scratch = std::mem::take(&mut into.scratch);
            *into = from;
            into.scratch = scratch;
            return;
        }
        if into.groups.len() < from.groups.len() {
            into.groups.resize_with(from.groups.len(), Default::default);
        }
        for (target, groups) in into.groups.iter_mut().zip(from.groups) {
            for (text, slots) in groups {
                let held = target.entry(text).or_default();
                for slot in slots {
                    let (weight, keep, role) = self.slot_kind(slot.plan);
                    match held
                        .iter_mut()
                        .find(|s| (s.plan, s.bucket) == (slot.plan, slot.bucket))
                    {
                        Some(s) => {
                            s.pending.absorb(slot.pending, role);
                            s.pending.bound(keep);
                        }
                        None => {
                            into.held += weight;
                            held.push(slot);
                        }
                    }
                }
            }
        }
    }

    /// For a batch slot's plan index (a ratio family's come after the plans): how much it
    /// weighs in [`Batch::len`], how many members it keeps, which observation it shows.
    fn slot_kind(&self, slot: usize) -> (usize, usize, Role) {
        match slot
            .checked_sub(self.plans.len())
            .and_then(|f| self.families.get(f))
        {
            Some(fam) => (fam.plans.len(), fam.keep, Role::Earliest),
            None => (
                1,
                self.plans.get(slot).map_or(usize::MAX, |p| p.keep),
                Role::Latest,
            ),
        }
    }

    /// Write the batch to `state` and return the correlation findings whose condition holds
    /// (deterministic ids: the same burst always yields the same finding).
    ///
    /// # Errors
    /// [`CorrelateError::State`] when a state call fails; the whole batch can be flushed
    /// again (updates are idempotent).
    pub async fn flush<S: CorrelationState>(
        &self,
        state: &S,
        batch: Batch,
    ) -> Result<Vec<Finding>, CorrelateError> {
        self.flush_counting(state, batch)
            .await
            .map(|(found, _)| found)
    }

    /// [`Correlator::flush`], also returning how many state calls it made (the DynamoDB
    /// requests a flush costs).
    ///
    /// # Errors
    /// As [`Correlator::flush`].
    pub async fn flush_counting<S: CorrelationState>(
        &self,
        state: &S,
        batch: Batch,
    ) -> Result<(Vec<Finding>, FlushStats), CorrelateError> {
        let tally = Tally::default();
        let tally = &tally;
        let now = if self.log_time_expiry {
            i64::MIN
        } else {
            time::OffsetDateTime::now_utc().unix_timestamp()
        };
        // each group's text and its hash (part of the state key) once for all its slots
        let mut groups: Vec<Due> = Vec::with_capacity(batch.held);
        for (group, slots) in batch.groups.into_iter().flatten() {
            let hash: Arc<str> = Arc::from(short_hash(&group, 16));
            let group: Arc<str> = Arc::from(group);
            for s in slots {
                groups.push((s.plan, group.clone(), s.bucket, hash.clone(), s.pending));
            }
        }
        // in a fixed order (the batch is a hash map): two buckets of one group that both fire
        // claim the earlier episode first, so a scan repeated gives the same finding ids
        groups.sort_unstable_by(|a, b| (a.0, &a.1, a.2).cmp(&(b.0, &b.1, b.2)));
        // only the groups that fire are collected (a batch can hold tens of thousands)
        let one = |(slot, group, bucket, hash, pending): Due| async move {
            if let Some(p) = self.plans.get(slot) {
                return self
                    .flush_one((state, tally), p, (&group, &hash), bucket, pending, now)
                    .await
                    .map(|f| f.into_iter().collect::<Vec<_>>())
                    .map_err(|source| CorrelateError::State {
                        correlation: p.rule.id.clone(),
                        source,
                    });
            }
            let Some(fam) = slot
                .checked_sub(self.plans.len())
                .and_then(|f| self.families.get(f))
            else {
                return Ok(Vec::new());
            };
            self.flush_family((state, tally), fam, (&group, &hash), bucket, pending, now)
                .await
                .map_err(|source| CorrelateError::State {
                    correlation: fam.label.clone(),
                    source,
                })
        };
        let found: Vec<Vec<Finding>> = if S::IMMEDIATE {
            // nothing to overlap: one group after another, no task per group
            let mut found = Vec::new();
            for g in groups {
                let f = one(g).await?;
                if !f.is_empty() {
                    found.push(f);
                }
            }
            found
        } else {
            stream::iter(groups)
                .map(one)
                .buffer_unordered(MAX_IN_FLIGHT)
                .try_filter_map(|found| async move { Ok((!found.is_empty()).then_some(found)) })
                .try_collect()
                .await?
        };
        let mut out: Vec<Finding> = found.into_iter().flatten().collect();
        out.sort_by(|a, b| a.id.cmp(&b.id));
        out.dedup_by(|a, b| a.id == b.id);
        Ok((out, tally.stats()))
    }

    async fn flush_one<S: CorrelationState>(
        &self,
        (state, tally): (&S, &Tally),
        p: &Plan,
        (group, gh): (&str, &str),
        bucket: i64,
        mut pending: Pending,
        now: i64,
    ) -> Result<Vec<Finding>, PortError> {
        if pending.latest.is_none() {
            return Ok(Vec::new());
        }
        let mut members = std::mem::take(&mut pending.members);
        members.sort_unstable_by(flush_order);
        members.dedup();
        // the times this flush observed: only a window holding one of them is reported
        let mut new_times: Vec<i64> = members.iter().filter_map(|(_, m)| time_of(m)).collect();
        new_times.sort_unstable();
        let pk = state_pk(&p.rule.id, gh);
        let key = |b: i64| StateKey {
            pk: pk.clone(),
            sk: b.to_string(),
        };
        let mut update = bucket_update(pk.clone(), bucket, (&p.rule.id, group), p, now);
        let neighbours = (key(bucket - p.span), key(bucket + p.span));
        let Some(items) =
            write_and_read((state, tally), p, &mut update, &members, neighbours).await?
        else {
            return Ok(Vec::new());
        };
        // episode by episode through what the three buckets hold: the earliest window that
        // qualifies, then the earliest one starting after the episode that window belongs to
        // ended (a claim answers with the episode already claimed when they overlap), so a
        // second burst is its own episode even while the first is still in view
        let mut found = Vec::new();
        let mut after = i64::MIN;
        // a window starting after `after` can hold only the flush's times after it
        while new_times.last().is_some_and(|&t| t > after) {
            let Some((start, summary)) = evaluate(p, &items, after) else {
                break;
            };
            let end = start.saturating_add(p.span);
            // the flush that completed a window without any of them claimed it (or the
            // episode it overlaps): skip to the first window that can hold one
            match new_times.get(new_times.partition_point(|&t| t < start)) {
                None => break,
                Some(&t) if t > end => {
                    after = t.saturating_sub(p.span).saturating_sub(1).max(start);
                    continue;
                }
                Some(_) => {}
            }
            let episode = claim_episode((state, tally), p, gh, start, update.expires_at).await?;
            if let Some(context) = pending.shown_in(episode, p.time_step()) {
                found.push(context.finding(p, group, episode, &summary));
            }
            after = episode.end.max(start);
        }
        Ok(found)
    }

    /// Write one bucket of a ratio family (one update per chunk: `d` and every member's
    /// numerator set in one item) and return the findings of the members whose ratio holds.
    async fn flush_family<S: CorrelationState>(
        &self,
        (state, tally): (&S, &Tally),
        fam: &Family,
        (group, gh): (&str, &str),
        bucket: i64,
        mut pending: Pending,
        now: i64,
    ) -> Result<Vec<Finding>, PortError> {
        let Some(first) = fam.plans.first().and_then(|&pi| self.plans.get(pi)) else {
            return Ok(Vec::new());
        };
        let mut members = std::mem::take(&mut pending.members);
        // one event's members of every set side by side (its `d` and its `n_*`): set by set,
        // a flush of more than the cap would fill `d` and have every `n_*` refused (0 %)
        members.sort_unstable_by(flush_order);
        members.dedup();
        let pk = state_pk(&fam.id, gh);
        let mut update = bucket_update(pk, bucket, (&fam.label, group), first, now);
        // the set sizes only, not the members
        let names: Vec<&str> = std::iter::once("d")
            .chain(fam.sets.iter().map(String::as_str))
            .collect();
        let mut sizes = SetSizes::default();
        for chunk in members.chunks(MEMBERS_PER_UPDATE) {
            update.add = members_by_set(chunk, &fam.sets);
            tally.write();
            sizes = state.add_counting(&update, &names).await?;
            if sizes.full {
                tracing::debug!(correlation = %fam.label, bucket, "ratio bucket full");
                break;
            }
        }
        let Some((&d, ns)) = sizes.sizes.split_first() else {
            return Ok(Vec::new());
        };
        let mut found = Vec::new();
        for (member, (&pi, &n)) in fam.plans.iter().zip(ns).enumerate() {
            let Some(p) = self.plans.get(pi) else {
                continue;
            };
            let Some((start, summary)) = ratio_verdict(p, n as u64, d as u64, bucket) else {
                continue;
            };
            let Some(context) = pending.shown(member) else {
                continue;
            };
            let episode = claim_episode((state, tally), p, gh, start, update.expires_at).await?;
            found.push(context.finding(p, group, episode, &summary));
        }
        Ok(found)
    }
}

/// Send `members` to the bucket `update` names, in chunks (stopping at the first refused
/// one), and read what a window through the bucket can see: the bucket as left by the last
/// update and its two `neighbours`. `None` when together they hold fewer observations than
/// `p`'s condition needs, so that no window can qualify. An adapter whose calls cost nothing
/// ([`CorrelationState::IMMEDIATE`]) is asked for set sizes first and builds the three
/// items only for a group that could fire (most groups of a scan hold a few observations);
/// the others write and read the items once, as the tally counts.
async fn write_and_read<S: CorrelationState>(
    (state, tally): (&S, &Tally),
    p: &Plan,
    update: &mut StateUpdate,
    members: &[(Set, Member)],
    (below, above): (StateKey, StateKey),
) -> Result<Option<Vec<StateItem>>, PortError> {
    let names: Vec<&str> = p.observed.iter().map(String::as_str).collect();
    let mut item = StateItem::default();
    let mut sizes = SetSizes::default();
    for chunk in members.chunks(MEMBERS_PER_UPDATE) {
        update.add = members_by_set(chunk, &[]);
        tally.write();
        let full = if S::IMMEDIATE {
            sizes = state.add_counting(update, &names).await?;
            sizes.full
        } else {
            item = state.add(update).await?;
            item.full
        };
        if full {
            tracing::debug!(correlation = %p.rule.id, bucket = %update.key.sk, "correlation bucket full");
            break;
        }
    }
    tally.read();
    if S::IMMEDIATE {
        let [b, a] = state.count_pair(&below, &above, &names).await?;
        if !p.could_hold(&[&sizes.sizes, &b, &a]) {
            return Ok(None);
        }
        let (b, a) = state.get_pair(&below, &above).await?;
        let item = state.get(&update.key).await?.unwrap_or_default();
        return Ok(Some([Some(item), b, a].into_iter().flatten().collect()));
    }
    let (b, a) = state.get_pair(&below, &above).await?;
    let items: Vec<StateItem> = [Some(item), b, a].into_iter().flatten().collect();
    let sizes: Vec<Vec<usize>> = items.iter().map(|i| i.sizes(&names)).collect();
    let sizes: Vec<&[usize]> = sizes.iter().map(Vec::as_slice).collect();
    Ok(p.could_hold(&sizes).then_some(items))
}

/// The state calls of one flush.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FlushStats {
    /// Updates (`add`, `add_counting`, a claim of a new episode: DynamoDB `UpdateItem`),
    /// attempted.
    pub writes: usize,
    /// Reads (`get_pair` of the neighbour buckets: one DynamoDB `Query`; the `GetItem` of
    /// every claim), attempted.
    pub reads: usize,
}

/// Counts a flush's state calls (its groups may run concurrently).
#[derive(Debug, Default)]
struct Tally {
    writes: std::sync::atomic::AtomicUsize,
    reads: std::sync::atomic::AtomicUsize,
}

impl Tally {
    fn write(&self) {
        self.writes
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }

    fn read(&self) {
        self.reads
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }

    fn stats(&self) -> FlushStats {
        FlushStats {
            writes: self.writes.load(std::sync::atomic::Ordering::Relaxed),
            reads: self.reads.load(std::sync::atomic::Ordering::Relaxed),
        }
    }
}

/// The update of bucket `bucket` of item `pk` of `p`'s kind, members to come: who wrote it
/// (`correlation`), the group and the bucket for people reading the table, the cap and the
/// expiry.
fn bucket_update(
    pk: String,
    bucket: i64,
    (correlation, group): (&str, &str),
    p: &Plan,
    now: i64,
) -> StateUpdate {
    let sk = bucket.to_string();
    StateUpdate {
        set_if_absent: BTreeMap::from([
            ("correlation".to_owned(), correlation.to_owned()),
            ("group".to_owned(), cut(group).into_owned()),
            ("bucket".to_owned(), sk.clone()),
        ]),
        key: StateKey { pk, sk },
        add: BTreeMap::new(),
        set: BTreeMap::new(),
        cap: p.cap,
        expires_at: now.max(bucket) + 2 * p.span + STATE_GRACE_SECS,
    }
}

/// The partition key of a state item: `STATE#<correlation or family id>#<group hash>` (once
/// per flushed group: built without the formatting machinery).
fn state_pk(id: &str, group_hash: &str) -> String {
    let mut pk = String::with_capacity(7 + id.len() + group_hash.len());
    pk.push_str("STATE#");
    pk.push_str(id);
    pk.push('#');
    pk.push_str(group_hash);
    pk
}

/// Claim the episode starting at `start` for `p`'s group `gh` (see [`CorrelationState::claim`]).
/// Tallied as the DynamoDB adapter runs it: a consistent read, and a write when the claim
/// answers with the window asked for (approximate: the very same window claimed again is
/// counted as a write though it is held, and a lost race's second round is not counted).
async fn claim_episode<S: CorrelationState>(
    (state, tally): (&S, &Tally),
    p: &Plan,
    gh: &str,
    start: i64,
    expires_at: i64,
) -> Result<Episode, PortError> {
    let wanted = Episode {
        start,
        end: start.saturating_add(p.span),
    };
    let key = StateKey {
        pk: state_pk(&p.rule.id, gh),
        sk: "EPISODE".into(),
    };
    tally.read();
    let episode = state.claim(&key, wanted, expires_at).await?;
    if episode == wanted {
        tally.write();
    }
    Ok(episode)
}

/// Observations of one invocation waiting to be written, grouped by (correlation, group,
/// bucket) so a file with a thousand matching records costs one update per group.
///
/// Kept compact: a busy file can touch tens of thousands of groups (one per principal and
/// correlation), so members are held as numbers until the flush renders them, and the
/// context of a record is shared by every group it feeds.
#[derive(Debug, Default)]
pub struct Batch {
    /// Per group-by (see `Plan::group_ids`): group text -> its observations, one slot per
    /// (correlation, bucket). A record's group is looked up once, by the text it was just
    /// read into, without allocating a key (hashbrown's default hasher is seeded foldhash:
    /// group texts come from the logs).
    groups: Vec<hashbrown::HashMap<String, Vec<Slot>>>,
    /// Slots held, all groups together (a ratio family's slot counts once per member).
    held: usize,
    source: Option<Arc<str>>,
    scratch: Scratch,
}

/// A slot on its way to the state: (plan, group text, bucket, group hash, observations).
type Due = (usize, Arc<str>, i64, Arc<str>, Pending);

/// The observations of one group for one correlation and bucket.
#[derive(Debug)]
struct Slot {
    plan: usize,
    bucket: i64,
    pending: Pending,
}

/// Buffers [`Correlator::observe`] reuses from record to record.
#[derive(Debug, Default)]
struct Scratch {
    /// (group-by id, plan, step) the current record feeds.
    todo: Vec<(usize, usize, usize)>,
    group: String,
    members: Vec<(Set, Member)>,
    /// (family, bucket) whose `d` the current record was counted in already.
    counted_d: Vec<(usize, i64)>,
    /// Contexts no group holds any more, to be overwritten.
    spare: Vec<Context>,
}

impl Batch {
    /// Whether nothing was observed.
    pub fn is_empty(&self) -> bool {
        self.held == 0
    }

    /// Its size in (correlation, group, bucket) observations: the measure its memory is
    /// bounded by (a ratio family's shared item counts once per correlation).
    pub fn len(&self) -> usize {
        self.held
    }

    /// Observations held (members of every set, duplicates included until the flush).
    pub fn members(&self) -> usize {
        self.groups
            .iter()
            .flat_map(|g| g.values())
            .flatten()
            .map(|s| s.pending.members.len())
            .sum()
    }

    /// The label of the input, stored once per batch rather than once per group.
    fn source(&mut self, source: &str) -> Arc<str> {
        match &self.source {
            Some(s) if &**s == source => s.clone(),
            _ => {
                let s: Arc<str> = Arc::from(source);
                self.source = Some(s.clone());
                s
            }
        }
    }
}

#[derive(Debug, Default)]
struct Pending {
    /// Unsorted, possibly repeated; sorted and deduplicated by the flush.
    members: Vec<(Set, Member)>,
    /// The observation the finding shows: the latest offered, or for a ratio family the
    /// earliest (see [`Role`]).
    latest: Option<Shown>,
    /// Ratio families: per member, its latest numerator observation (empty until one).
    numerator: Vec<Option<Shown>>,
    /// Other slots: the earliest observation too (then the smallest event id), shown when
    /// the latest lies outside the episode reported (a flush can complete a window that
    /// ended before its latest observation, or two episodes).
    first: Option<Shown>,
}

/// An observation a finding may show, with its time beside it: a record is compared with
/// the held one without reading the context (another cache line per record and group).
type Shown = (i64, Arc<Context>);

/// Which observation of a group a finding shows. A slot is offered one kind only: a ratio
/// family's slot keeps its earliest call (each member's latest numerator call is kept
/// beside it), every other slot its latest observation.
#[derive(Debug, Clone, Copy)]
enum Role {
    /// The earliest (then the smallest event id).
    Earliest,
    /// The latest (then the largest event id).
    Latest,
}

/// Put `context` in `held` if it is the observation `role` keeps: the same whatever order
/// records arrive in. Returns the context it replaced.
fn keep_shown(
    held: &mut Option<Shown>,
    (time, event_id): (i64, &str),
    role: Role,
    context: impl FnOnce() -> Arc<Context>,
) -> Option<Arc<Context>> {
    if let Some((held_time, c)) = held.as_ref() {
        let order = held_time
            .cmp(&time)
            .then_with(|| c.get(Ctx::EventId).cmp(event_id));
        let stays = match role {
            Role::Latest => order.is_ge(),
            Role::Earliest => order.is_le(),
        };
        if stays {
            return None;
        }
    }
    held.replace((time, context())).map(|(_, c)| c)
}

impl Pending {
    /// Keep `context` as the observation the finding shows if `role` keeps it.
    /// Returns the context it replaced.
    fn offer(
        &mut self,
        time: i64,
        event_id: &str,
        role: Role,
        context: impl FnOnce() -> Arc<Context>,
    ) -> Option<Arc<Context>> {
        keep_shown(&mut self.latest, (time, event_id), role, context)
    }

    /// Keep `context` as the earliest observation (see [`Pending::first`]) if it is.
    /// Returns the context it replaced.
    fn offer_first(
        &mut self,
        time: i64,
        event_id: &str,
        context: impl FnOnce() -> Arc<Context>,
    ) -> Option<Arc<Context>> {
        keep_shown(&mut self.first, (time, event_id), Role::Earliest, context)
    }

    /// What the finding of `episode` shows (not for ratio families): the latest
    /// observation, or the earliest when only that one lies in the episode's window (times
    /// as the plan counts them: rounded down to `step` seconds).
    fn shown_in(&self, episode: Episode, step: i64) -> Option<&Arc<Context>> {
        [&self.latest, &self.first]
            .into_iter()
            .flatten()
            .find(|(t, _)| (episode.start..=episode.end).contains(&round_down(*t, step)))
            .or(self.latest.as_ref())
            .map(|(_, c)| c)
    }

    /// Keep `context` as ratio member `member`'s numerator observation if it is the latest
    /// (then the largest event id). Returns the context it replaced.
    fn offer_numerator(
        &mut self,
        member: usize,
        time: i64,
        event_id: &str,
        context: impl FnOnce() -> Arc<Context>,
    ) -> Option<Arc<Context>> {
        if self.numerator.len() <= member {
            self.numerator.resize(member + 1, None);
        }
        let slot = self.numerator.get_mut(member)?;
        keep_shown(slot, (time, event_id), Role::Latest, context)
    }

    /// What ratio member `member`'s finding shows: its latest numerator observation, else
    /// the earliest observation of the group.
    fn shown(&self, member: usize) -> Option<&Arc<Context>> {
        self.numerator
            .get(member)
            .and_then(Option::as_ref)
            .or(self.latest.as_ref())
            .map(|(_, c)| c)
    }

    /// Take `other`'s members and keep whichever shown observations `role` (and, for the
    /// numerator observations, the latest) prefers.
    fn absorb(&mut self, mut other: Pending, role: Role) {
        self.members.append(&mut other.members);
        if let Some((time, context)) = other.latest {
            let shown = context.clone();
            keep_shown(
                &mut self.latest,
                (time, shown.get(Ctx::EventId)),
                role,
                || context,
            );
        }
        if let Some((time, context)) = other.first {
            let shown = context.clone();
            let _ = self.offer_first(time, shown.get(Ctx::EventId), || context);
        }
        for (member, offered) in other.numerator.into_iter().enumerate() {
            if let Some((time, context)) = offered {
                let shown = context.clone();
                let _ = self.offer_numerator(member, time, shown.get(Ctx::EventId), || context);
            }
        }
    }

    /// Trim to the `keep` members a flush can send once well past them (trimming sorts, so
    /// it waits for twice as many plus a margin).
    fn bound(&mut self, keep: usize) {
        if self.members.len() > keep.saturating_mul(2).saturating_add(1024) {
            self.keep_first(keep);
        }
    }

    /// Keep the first `n` distinct members in flush order ([`flush_order`])
    /// and drop the rest: the flush would never send them (see [`Plan::keep`]).
    fn keep_first(&mut self, n: usize) {
        self.members.sort_unstable_by(flush_order);
        self.members.dedup();
        self.members.truncate(n);
    }
}

/// A state set, rendered to its attribute name at the flush.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Set {
    /// Ratio denominator.
    D,
    /// Events (`event_count`).
    E,
    /// Ratio numerator of a family's member (named by [`Family::sets`]).
    N(u16),
    /// Values (`value_count`).
    V,
    /// Temporal step.
    Step(u16),
}

impl Set {
    /// The attribute name; `sets` names the numerator sets of a ratio family.
    fn name(self, sets: &[String]) -> Cow<'_, str> {
        match self {
            Set::D => "d".into(),
            Set::E => "e".into(),
            Set::N(k) => match sets.get(usize::from(k)) {
                Some(name) => name.as_str().into(),
                None => format!("n_{k}").into(),
            },
            Set::V => "v".into(),
            Set::Step(s) => format!("s{s}").into(),
        }
    }
}

/// The order in which a flush sends members and [`Pending::keep_first`] keeps them: by
/// member, then set, so one event's members of every set are side by side. Within one
/// correlation all members are of one kind, compared as numbers (hashes, times) or text.
fn flush_order(a: &(Set, Member), b: &(Set, Member)) -> std::cmp::Ordering {
    (&a.1, a.0).cmp(&(&b.1, b.0))
}

/// One state update's worth of members as the port takes them: by set name (`sets`: a
/// ratio family's numerator sets).
fn members_by_set(chunk: &[(Set, Member)], sets: &[String]) -> BTreeMap<String, Vec<Member>> {
    // a chunk holds one to a few sets: count them first, so each list is allocated once at
    // its size
    let mut counts: Vec<(Set, usize)> = Vec::with_capacity(4);
    for (set, _) in chunk {
        match counts.iter_mut().find(|(s, _)| s == set) {
            Some((_, n)) => *n += 1,
            None => counts.push((*set, 1)),
        }
    }
    let mut by: Vec<(Set, Vec<Member>)> = counts
        .into_iter()
        .map(|(set, n)| (set, Vec::with_capacity(n)))
        .collect();
    for (set, m) in chunk {
        if let Some((_, members)) = by.iter_mut().find(|(s, _)| s == set) {
            members.push(m.clone());
        }
    }
    let mut add: BTreeMap<String, Vec<Member>> = BTreeMap::new();
    for (set, members) in by {
        // two sets of one name (not made by `plan`) still add all their members
        match add.entry(set.name(sets).into_owned()) {
            std::collections::btree_map::Entry::Vacant(e) => {
                e.insert(members);
            }
            std::collections::btree_map::Entry::Occupied(mut e) => e.get_mut().extend(members),
        }
    }
    add
}

/// The first 48 bits of SHA-256 of `s` (the 12 hex characters members carry).
fn hash48(s: &str) -> u64 {
    let d = Sha256::digest(s.as_bytes());
    d.iter()
        .take(6)
        .fold(0u64, |acc, b| (acc << 8) | u64::from(*b))
}

/// The observation of a group a correlation finding shows (see [`Pending::offer`]). Its texts are
/// kept in one string (tens of thousands of groups can wait in a batch).
#[derive(Debug)]
struct Context {
    /// The fields of [`Ctx`] one after another; `ends[i]` is where field `i` ends.
    text: String,
    ends: [u32; Ctx::COUNT],
    has_principal: bool,
    has_source_ip: bool,
    source: Arc<str>,
}

/// The fields of a [`Context`], in storage order.
#[derive(Debug, Clone, Copy)]
enum Ctx {
    EventId,
    EventName,
    EventTime,
    EventSource,
    AccountId,
    Region,
    Principal,
    SourceIp,
}

impl Ctx {
    const COUNT: usize = 8;
}

impl Context {
    /// The context of `r`, written into `reuse`'s buffer when given (no allocation once a
    /// buffer is large enough).
    fn of(r: &Record, event_id: &str, source: Arc<str>, reuse: Option<Context>) -> Context {
        let principal = r.principal();
        let source_ip = r.source_ip();
        let fields: [&str; Ctx::COUNT] = [
            event_id,
            r.event_name().unwrap_or_default(),
            r.event_time_str().unwrap_or_default(),
            r.event_source().unwrap_or_default(),
            r.account_id().unwrap_or_default(),
            r.region().unwrap_or_default(),
            principal.as_deref().unwrap_or_default(),
            source_ip.unwrap_or_default(),
        ];
        let mut text = reuse.map(|c| c.text).unwrap_or_default();
        text.clear();
        text.reserve(fields.iter().map(|f| f.len()).sum());
        let mut ends = [0u32; Ctx::COUNT];
        for (end, f) in ends.iter_mut().zip(fields) {
            text.push_str(f);
            // a record is far below 4 GiB (the reader refuses larger ones long before)
            *end = u32::try_from(text.len()).unwrap_or(u32::MAX);
        }
        Context {
            text,
            ends,
            has_principal: principal.is_some(),
            has_source_ip: source_ip.is_some(),
            source,
        }
    }

    fn get(&self, field: Ctx) -> &str {
        let i = field as usize;
        let start = match i {
            0 => 0,
            _ => self.ends.get(i - 1).copied().unwrap_or(0),
        };
        let end = self.ends.get(i).copied().unwrap_or(0);
        self.text
            .get(start as usize..end as usize)
            .unwrap_or_default()
    }

    fn finding(&self, p: &Plan, group: &str, episode: Episode, summary: &str) -> Finding {
        let rule = &p.rule;
        Finding {
            id: correlation_finding_id(&rule.id, group, episode.start),
            rule_id: rule.id.clone(),
            title: format!("{} ({summary})", rule.title),
            severity: rule.level,
            tags: rule.tags.clone(),
            event_id: self.get(Ctx::EventId).to_owned(),
            event_name: self.get(Ctx::EventName).to_owned(),
            event_time: self.get(Ctx::EventTime).to_owned(),
            event_source: self.get(Ctx::EventSource).to_owned(),
            account_id: self.get(Ctx::AccountId).to_owned(),
            region: self.get(Ctx::Region).to_owned(),
            source: self.source.to_string(),
            principal: self
                .has_principal
                .then(|| self.get(Ctx::Principal).to_owned()),
            source_ip: self
                .has_source_ip
                .then(|| self.get(Ctx::SourceIp).to_owned()),
            error_code: None,
            episode_start: time::OffsetDateTime::from_unix_timestamp(episode.start)
                .ok()
                .and_then(crate::model::format_time),
        }
    }
}

/// The id of a correlation finding: one per (correlation, group, episode start).
pub fn correlation_finding_id(correlation: &str, group: &str, start: i64) -> String {
    finding_id(correlation, &format!("correlation\0{group}\0{start}"))
}

/// The time a member carries (`event_count`: the event's, `value_count` and temporal: its
/// slot); `None` for ratio members, which carry none.
fn time_of(m: &Member) -> Option<i64> {
    match m {
        Member::Timed(t, _) | Member::Int(t) => Some(*t),
        Member::Text(text) => leading_time(text),
        Member::Hash(_) => None,
    }
}

/// The time of a stored `<time>|<rest>` member (`e`: event, `v`: value).
fn leading_time(member: &str) -> Option<i64> {
    member.split_once('|').and_then(|(t, _)| t.parse().ok())
}

/// Evaluate the stored observations later than `after`: `(start, human summary)` of the
/// earliest window starting after `after` in which the condition holds. A window starts at
/// an observation and holds only observations at or after its start, so leaving out the
/// earlier ones leaves every such window as it is.
fn evaluate(p: &Plan, items: &[StateItem], after: i64) -> Option<(i64, String)> {
    match &p.shape {
        Shape::Count => {
            let cond = p.rule.condition.as_ref()?;
            let mut times: Vec<i64> = items
                .iter()
                .flat_map(|i| i.set("e"))
                .filter_map(leading_time)
                .filter(|&t| t > after)
                .collect();
            let (start, n) = window::count_window(&mut times, p.span, cond)?;
            Some((start, format!("{n} events within {}", humanize(p.span))))
        }
        Shape::Values => {
            let cond = p.rule.condition.as_ref()?;
            let mut members: Vec<(i64, &str)> = items
                .iter()
                .flat_map(|i| i.set("v"))
                .filter_map(|m| {
                    let (t, v) = m.split_once('|')?;
                    Some((t.parse::<i64>().ok()?, v))
                })
                .filter(|&(t, _)| t > after)
                .collect();
            let (start, n) = window::value_window(&mut members, p.span, cond)?;
            let field = cond.field.as_deref().unwrap_or("values");
            Some((
                start,
                format!("{n} distinct {field} within {}", humanize(p.span)),
            ))
        }
        Shape::Temporal { ordered } => {
            let mut steps: Vec<Vec<i64>> = p
                .observed
                .iter()
                .map(|name| {
                    items
                        .iter()
                        .flat_map(|i| i.set(name))
                        .filter_map(|m| m.parse::<i64>().ok())
                        .filter(|&t| t > after)
                        .collect()
                })
                .collect();
            let start = window::temporal_window(&mut steps, p.span, *ordered)?;
            let how = if *ordered { "in order" } else { "all" };
            Some((
                start,
                format!("{} steps {how} within {}", steps.len(), humanize(p.span)),
            ))
        }
        // ratios are decided from set sizes by their family's flush
        Shape::Ratio { .. } => None,
    }
}

/// A ratio correlation's verdict on a bucket holding `n` numerator and `d` events.
fn ratio_verdict(p: &Plan, n: u64, d: u64, bucket: i64) -> Option<(i64, String)> {
    let Shape::Ratio {
        min_percent,
        min_total,
        ..
    } = &p.shape
    else {
        return None;
    };
    if !window::ratio_holds(n, d, p.threshold, *min_percent, *min_total) {
        return None;
    }
    let pct = n.saturating_mul(100) / d.max(1);
    Some((
        bucket,
        format!("{n} of {d} calls ({pct}%) within {}", humanize(p.span)),
    ))
}

fn plan(corr: &CorrelationRule, rules: &RuleSet) -> Result<Plan, String> {
    for id in &corr.rules {
        if rules.rule(id).is_none() {
            return Err(format!(
                "references correlation `{id}`: chained correlations are not supported"
            ));
        }
    }
    let span =
        i64::try_from(corr.timespan.as_secs()).map_err(|_| "timespan too long".to_owned())?;
    if span < 1 {
        return Err("timespan must be at least one second".into());
    }
    let resolve = |step: usize, name: &str| -> Path {
        let Some(rule_id) = corr.rules.get(step) else {
            return split(name);
        };
        corr.aliases
            .iter()
            .find(|a| a.alias == name)
            .and_then(|a| {
                a.fields
                    .iter()
                    .find(|(r, _)| {
                        r == rule_id
                            || rules.rule(rule_id).is_some_and(|x| {
                                x.sigma_id.as_deref() == Some(r) || x.name.as_deref() == Some(r)
                            })
                    })
                    .map(|(_, f)| split(f))
            })
            .unwrap_or_else(|| split(name))
    };
    let steps = corr.rules.len();
    let group_paths = (0..steps)
        .map(|s| corr.group_by.iter().map(|g| resolve(s, g)).collect())
        .collect();
    let field = corr.condition.as_ref().and_then(|c| c.field.clone());
    let value_paths = (0..steps)
        .map(|s| field.as_deref().map(|f| resolve(s, f)))
        .collect();
    let (shape, threshold) = match (corr.kind, &corr.ratio) {
        (_, Some(_)) if corr.kind != CorrelationType::EventCount => {
            return Err("`trailwatch.ratio` extends event_count correlations only".into())
        }
        (CorrelationType::EventCount, Some(r)) => {
            // the engine resolved the numerator to rule ids among `corr.rules`
            let numerator = corr.rules.iter().map(|id| r.numerator.contains(id)).collect();
            let t = corr.condition.as_ref().and_then(window::threshold).ok_or("ratio needs a lower bound on the numerator count (gte/gt)")?;
            (
                Shape::Ratio {
                    numerator,
                    min_percent: r.min_percent,
                    min_total: r.min_total,
                },
                t,
            )
        }
        (CorrelationType::EventCount, None) => (
            Shape::Count,
            corr.condition.as_ref().and_then(window::threshold).ok_or("condition has no lower bound (gte/gt/eq): it can only be decided when a window closes")?,
        ),
        (CorrelationType::ValueCount, _) => (
            Shape::Values,
            corr.condition.as_ref().and_then(window::threshold).ok_or("condition has no lower bound (gte/gt/eq): it can only be decided when a window closes")?,
        ),
        (CorrelationType::Temporal, _) => (Shape::Temporal { ordered: false }, steps as u64),
        (CorrelationType::TemporalOrdered, _) => (Shape::Temporal { ordered: true }, steps as u64),
    };
    let t = usize::try_from(threshold).unwrap_or(usize::MAX);
    let cap = match shape {
        Shape::Count => t.saturating_add(CAP_MARGIN),
        Shape::Values => t.saturating_add(CAP_MARGIN).saturating_mul(8),
        // at most 16 slots per step and bucket: the cap is never the limit
        Shape::Temporal { .. } => steps.saturating_mul(16).saturating_add(CAP_MARGIN),
        Shape::Ratio { .. } => RATIO_CAP,
    };
    let sets = match shape {
        Shape::Ratio { .. } => 2,
        Shape::Temporal { .. } => steps.max(1),
        Shape::Count | Shape::Values => 1,
    };
    let keep = sets.saturating_mul(cap).saturating_add(MEMBERS_PER_UPDATE);
    let observed: Vec<Set> = match shape {
        Shape::Count => vec![Set::E],
        Shape::Values => vec![Set::V],
        Shape::Temporal { .. } => (0..steps)
            .map(|s| Set::Step(u16::try_from(s).unwrap_or(u16::MAX)))
            .collect(),
        Shape::Ratio { .. } => Vec::new(),
    };
    let observed = observed.iter().map(|s| s.name(&[]).into_owned()).collect();
    Ok(Plan {
        rule: corr.clone(),
        shape,
        group_paths,
        group_ids: Vec::new(),
        value_paths,
        threshold,
        span,
        cap,
        keep,
        family: None,
        observed,
    })
}

/// Base rule id -> the (plan, step) pairs it feeds.
fn by_rule(plans: &[Plan]) -> hashbrown::HashMap<String, Vec<(usize, usize)>> {
    let mut by_rule: hashbrown::HashMap<String, Vec<(usize, usize)>> = hashbrown::HashMap::new();
    for (idx, p) in plans.iter().enumerate() {
        for (step, id) in p.rule.rules.iter().enumerate() {
            by_rule.entry(id.clone()).or_default().push((idx, step));
        }
    }
    by_rule
}

/// Put every ratio plan in a [`Family`]: plans whose steps all group by the same fields and
/// that count the same denominator building blocks over the same timespan share one. Sets
/// `Plan::family`.
fn families(plans: &mut [Plan], distinct: &[Vec<Path>]) -> Vec<Family> {
    let mut out: Vec<(String, Family)> = Vec::new();
    for pi in 0..plans.len() {
        let Some(p) = plans.get(pi) else {
            continue;
        };
        let Shape::Ratio { numerator, .. } = &p.shape else {
            continue;
        };
        let mut denominator: Vec<&str> = p
            .rule
            .rules
            .iter()
            .zip(numerator)
            .filter(|(_, &n)| !n)
            .map(|(r, _)| r.as_str())
            .collect();
        denominator.sort_unstable();
        let one_grouping = p.group_ids.windows(2).all(|w| w.first() == w.last());
        let grouping = p
            .group_ids
            .first()
            .and_then(|&g| distinct.get(g))
            .map(|paths| {
                paths
                    .iter()
                    .map(|path| path.join("."))
                    .collect::<Vec<_>>()
                    .join(",")
            })
            .unwrap_or_default();
        // a plan whose steps group differently keeps an item of its own
        let key = match one_grouping {
            true => format!("{}|{grouping}|{}", denominator.join(","), p.span),
            false => format!(
                "{}|{grouping}|{}|{}",
                denominator.join(","),
                p.span,
                p.rule.id
            ),
        };
        let set = format!("n_{}", short_hash(&p.rule.id, 12));
        let f = match out.iter().position(|(k, _)| *k == key) {
            Some(f) => f,
            None => {
                out.push((
                    key.clone(),
                    Family {
                        plans: Vec::new(),
                        id: format!("ratio-{}", short_hash(&key, 12)),
                        label: String::new(),
                        sets: Vec::new(),
                        keep: 0,
                    },
                ));
                out.len() - 1
            }
        };
        let Some((_, fam)) = out.get_mut(f) else {
            continue;
        };
        let member = fam.plans.len();
        fam.plans.push(pi);
        fam.sets.push(set);
        fam.label = match fam.label.is_empty() {
            true => p.rule.id.clone(),
            false => format!("{},{}", fam.label, p.rule.id),
        };
        // `d` and every numerator set, as `Plan::keep`
        fam.keep = (fam.sets.len() + 1)
            .saturating_mul(p.cap)
            .saturating_add(MEMBERS_PER_UPDATE);
        if let Some(p) = plans.get_mut(pi) {
            p.family = Some((f, member));
        }
    }
    out.into_iter().map(|(_, f)| f).collect()
}

/// Write the group key of `record` for the group-by `paths` into `key`: the values joined
/// by `\x1f` (of each path, the first scalar). `false` when one is missing (an event
/// without the grouped field must not lump with others).
fn group_key(paths: &[Path], record: &Record, key: &mut String) -> bool {
    key.clear();
    for (i, path) in paths.iter().enumerate() {
        if i > 0 {
            key.push('\u{1f}');
        }
        let before = key.len();
        let found = record.any_value_at(path, &mut |v| match v {
            ValueRef::Str(s) => {
                key.push_str(s);
                true
            }
            ValueRef::Json(v) => push_scalar(v, key),
        });
        if !found || key.len() == before {
            return false;
        }
    }
    true
}

/// Append `v` to `out` if it is a scalar (string, number, boolean).
fn push_scalar(v: &Value, out: &mut String) -> bool {
    use std::fmt::Write as _;
    match v {
        Value::String(s) => out.push_str(s),
        Value::Number(n) => {
            let _ = write!(out, "{n}");
        }
        Value::Bool(b) => {
            let _ = write!(out, "{b}");
        }
        _ => return false,
    }
    true
}

/// `v` as text if it is a scalar (see [`push_scalar`]).
fn scalar(v: &Value) -> Option<String> {
    let mut text = String::new();
    push_scalar(v, &mut text).then_some(text)
}

fn cut(s: &str) -> std::borrow::Cow<'_, str> {
    if s.len() <= MAX_VALUE_BYTES {
        return std::borrow::Cow::Borrowed(s);
    }
    let mut end = MAX_VALUE_BYTES;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    std::borrow::Cow::Owned(s.get(..end).unwrap_or_default().to_owned())
}

fn round_down(t: i64, step: i64) -> i64 {
    let step = step.max(1);
    t.div_euclid(step) * step
}

fn short_hash(s: &str, hex_chars: usize) -> String {
    let d = Sha256::digest(s.as_bytes());
    let mut h = hex::encode(d.get(..hex_chars.div_ceil(2)).unwrap_or(&d));
    h.truncate(hex_chars);
    h
}

fn humanize(secs: i64) -> String {
    match secs {
        s if s % 86_400 == 0 => format!("{}d", s / 86_400),
        s if s % 3600 == 0 => format!("{}h", s / 3600),
        s if s % 60 == 0 => format!("{}m", s / 60),
        s => format!("{s}s"),
    }
}

/// Observe one record and flush at once (the event-handler's one-record invocations).
///
/// # Errors
/// As [`Correlator::flush`].
pub async fn observe<S: CorrelationState>(
    state: &S,
    correlator: &Correlator,
    record: &Record,
    matched: &[&Rule],
    source: &str,
) -> Result<Vec<Finding>, CorrelateError> {
    let mut batch = Batch::default();
    correlator.observe(&mut batch, record, matched, source);
    if batch.is_empty() {
        return Ok(Vec::new());
    }
    correlator.flush(state, batch).await
}

#[cfg(test)]
mod tests;

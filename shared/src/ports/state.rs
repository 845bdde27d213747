//! [`CorrelationState`]: the counters and sequence progress of correlation rules, and the
//! alert groups of the deduplication step, kept where every invocation can see them.
//!
//! Records of one burst arrive in different log files, different invocations and on both
//! paths (S3 and EventBridge), possibly twice. The port therefore offers only operations
//! that are idempotent and order-independent on their own:
//!
//! - [`CorrelationState::add`]: add members to named string sets of one item (a set ignores
//!   a member it already holds, so a redelivered event counts once; a member is its
//!   rendering, [`Member::render`]) and set scalars only if
//!   absent; returns the item as it is after the update. Sets are bounded: an update that
//!   would add to a set already holding `cap` members is refused as a whole and the current
//!   item is returned with [`StateItem::full`] set.
//! - [`CorrelationState::get`]: read an item (strongly consistent).
//! - [`CorrelationState::claim`]: claim the episode `[start, end]` of a correlation group
//!   unless an episode claimed earlier overlaps it; returns the episode that holds
//!   ([`decide_claim`]: the group remembers its [`EPISODES_KEPT`] latest episodes).
//!
//! Items live in the findings table (`pk`/`sk` strings) and expire through its TTL attribute
//! `expires_at`. The DynamoDB implementation is `ports::aws::DynamoDbCorrelationState`; the
//! in-memory one, [`super::memory_state::MemCorrelationState`], serves tests and the CLI.

use super::PortError;
use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;

/// The key of a state item (`pk`, `sk` of the findings table).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct StateKey {
    /// Partition key, e.g. `STATE#<correlation id>#<group hash>`.
    pub pk: String,
    /// Sort key, e.g. the window start in epoch seconds.
    pub sk: String,
}

/// A member of a state set. Sets hold strings (DynamoDB string sets): a member *is* its
/// rendering, so `Hash(15)` and `Text("00000000000f")` are the same member. Callers keep
/// numbers as numbers so that an adapter that can (the in-memory one) never renders them.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Member {
    /// An event's hash: rendered as at least twelve lowercase hex digits (`{:012x}`).
    Hash(u64),
    /// An event at a time: `<time>|<hash as in Hash>`.
    Timed(i64, u64),
    /// A number (a time slot): decimal.
    Int(i64),
    /// Any other text, as is.
    Text(Box<str>),
}

impl Member {
    /// The string stored for this member.
    pub fn render(&self) -> String {
        match self {
            Member::Hash(h) => format!("{h:012x}"),
            Member::Timed(t, h) => format!("{t}|{h:012x}"),
            Member::Int(i) => i.to_string(),
            Member::Text(t) => t.to_string(),
        }
    }
}

impl From<&str> for Member {
    fn from(s: &str) -> Member {
        Member::Text(s.into())
    }
}

impl From<String> for Member {
    fn from(s: String) -> Member {
        Member::Text(s.into_boxed_str())
    }
}

/// One atomic update of a state item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StateUpdate {
    /// The item.
    pub key: StateKey,
    /// Members to add, by set name (names are `[a-z0-9_]`; members render non-empty; a
    /// member listed twice is added once).
    pub add: BTreeMap<String, Vec<Member>>,
    /// Scalars written only when the item does not have them yet.
    pub set_if_absent: BTreeMap<String, String>,
    /// Scalars always overwritten (last writer wins: informational only).
    pub set: BTreeMap<String, String>,
    /// A set named in `add` that already holds this many members refuses the update.
    pub cap: usize,
    /// Epoch seconds after which the item may be deleted (TTL).
    pub expires_at: i64,
}

/// A state item as read or as left by an update.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StateItem {
    /// String sets by name.
    pub sets: BTreeMap<String, BTreeSet<String>>,
    /// Scalar attributes by name.
    pub scalars: BTreeMap<String, String>,
    /// The update was refused because a set it touched had reached the cap.
    pub full: bool,
}

impl StateItem {
    /// The members of set `name` (empty when absent).
    pub fn set(&self, name: &str) -> impl Iterator<Item = &str> {
        self.sets
            .get(name)
            .into_iter()
            .flatten()
            .map(String::as_str)
    }

    /// How many members set `name` holds.
    pub fn len_of(&self, name: &str) -> usize {
        self.sets.get(name).map_or(0, BTreeSet::len)
    }

    /// How many members each of the sets `names` holds, in order.
    pub fn sizes(&self, names: &[&str]) -> Vec<usize> {
        names.iter().map(|n| self.len_of(n)).collect()
    }
}

/// How many members some sets of an item hold after an update ([`CorrelationState::add_counting`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SetSizes {
    /// One size per set asked for, in the order asked.
    pub sizes: Vec<usize>,
    /// The update was refused because a set it touched had reached the cap.
    pub full: bool,
}

/// An episode of a correlation group: the window in which it fired.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Episode {
    /// Window start, epoch seconds (part of the finding id).
    pub start: i64,
    /// Window end, epoch seconds.
    pub end: i64,
}

/// How many episodes of one group a claim remembers (the latest ones). A retried flush
/// or a late event of an older burst finds its episode among them; a window older than
/// all of them once the group had more is folded into the oldest remembered one.
pub const EPISODES_KEPT: usize = 16;

/// What claiming an episode does, given the episodes the group claimed before.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClaimOutcome {
    /// An episode claimed before holds: report it (its id is the one already reported).
    Held(Episode),
    /// The wanted episode is new: store these (by start, the latest [`EPISODES_KEPT`]).
    Claimed(Vec<Episode>),
}

/// Decide a claim of `wanted` against `held` (by start, pairwise disjoint, as
/// [`ClaimOutcome::Claimed`] leaves them): the earliest held episode that overlaps
/// `wanted` holds; otherwise `wanted` is a new episode, unless it ends before the oldest
/// one remembered while older ones may have been forgotten (then that oldest one holds,
/// so a forgotten episode is not reported twice).
pub fn decide_claim(held: &[Episode], wanted: Episode) -> ClaimOutcome {
    if let Some(h) = held
        .iter()
        .find(|h| h.start <= wanted.end && h.end >= wanted.start)
    {
        return ClaimOutcome::Held(*h);
    }
    if held.len() >= EPISODES_KEPT {
        if let Some(oldest) = held.first().filter(|o| wanted.end < o.start) {
            return ClaimOutcome::Held(*oldest);
        }
    }
    let mut all = held.to_vec();
    let at = all.partition_point(|h| h.start < wanted.start);
    all.insert(at, wanted);
    let extra = all.len().saturating_sub(EPISODES_KEPT);
    all.drain(..extra);
    ClaimOutcome::Claimed(all)
}

/// Where correlation state lives (DynamoDB in Lambda, memory in the CLI and tests).
pub trait CorrelationState: Send + Sync {
    /// Calls complete without waiting on anything (the in-memory state): a flush then makes
    /// them one after another instead of keeping [`crate::correlate::MAX_IN_FLIGHT`] in
    /// flight, which would cost a task allocation per group for nothing.
    const IMMEDIATE: bool = false;

    /// Apply `update` atomically; see the module documentation.
    ///
    /// # Errors
    /// [`PortError`] classified by the adapter (throttling is retryable).
    fn add(
        &self,
        update: &StateUpdate,
    ) -> impl Future<Output = Result<StateItem, PortError>> + Send;

    /// Apply `update` as [`CorrelationState::add`] does, for callers that need only how many
    /// members the sets `names` hold afterwards (a ratio, a count): an adapter that can
    /// answer without building the whole item (the in-memory one) overrides it.
    ///
    /// # Errors
    /// As [`CorrelationState::add`].
    fn add_counting(
        &self,
        update: &StateUpdate,
        names: &[&str],
    ) -> impl Future<Output = Result<SetSizes, PortError>> + Send {
        async move {
            let item = self.add(update).await?;
            Ok(SetSizes {
                sizes: item.sizes(names),
                full: item.full,
            })
        }
    }

    /// Read an item; `None` when it does not exist.
    ///
    /// # Errors
    /// [`PortError`] classified by the adapter.
    fn get(
        &self,
        key: &StateKey,
    ) -> impl Future<Output = Result<Option<StateItem>, PortError>> + Send;

    /// Read two items of one correlation group, the buckets either side of the one just
    /// written (`below` and `above`: the same `pk`, bucket sort keys). An adapter that can
    /// read both in one request (DynamoDB: one strongly consistent `Query` on the sort-key
    /// range, one read unit for small items instead of two) overrides it.
    ///
    /// # Errors
    /// As [`CorrelationState::get`].
    fn get_pair(
        &self,
        below: &StateKey,
        above: &StateKey,
    ) -> impl Future<Output = Result<(Option<StateItem>, Option<StateItem>), PortError>> + Send
    {
        async move { Ok((self.get(below).await?, self.get(above).await?)) }
    }

    /// How many members the sets `names` of the items `below` and `above` hold (one size per
    /// name, in order; an item that does not exist holds none): what
    /// [`CorrelationState::get_pair`] would show of them. An [`CorrelationState::IMMEDIATE`]
    /// adapter answers without building the items, so a caller can read the items only for
    /// the groups whose observations could satisfy a condition.
    ///
    /// # Errors
    /// As [`CorrelationState::get`].
    fn count_pair(
        &self,
        below: &StateKey,
        above: &StateKey,
        names: &[&str],
    ) -> impl Future<Output = Result<[Vec<usize>; 2], PortError>> + Send {
        async move {
            let (b, a) = self.get_pair(below, above).await?;
            let sizes = |item: Option<StateItem>| item.unwrap_or_default().sizes(names);
            Ok([sizes(b), sizes(a)])
        }
    }

    /// Claim `wanted` for the group stored at `key`, atomically, as [`decide_claim`] says
    /// given the episodes claimed before: returns `wanted` when it is new, else the episode
    /// that holds (the caller reports that one again, so a retried invocation re-creates
    /// the same finding id and storage deduplicates it).
    ///
    /// # Errors
    /// [`PortError`] classified by the adapter.
    fn claim(
        &self,
        key: &StateKey,
        wanted: Episode,
        expires_at: i64,
    ) -> impl Future<Output = Result<Episode, PortError>> + Send;
}

#[cfg(test)]
mod claim_tests {
    use super::*;

    fn ep(start: i64, end: i64) -> Episode {
        Episode { start, end }
    }

    #[test]
    fn an_overlapping_episode_holds_and_a_disjoint_one_is_new() {
        let held = [ep(100, 200), ep(400, 500)];
        let (first, second) = (ClaimOutcome::Held(held[0]), ClaimOutcome::Held(held[1]));
        let new = |all: &[Episode]| ClaimOutcome::Claimed(all.to_vec());
        let cases = [
            // overlapping either one, touching an end, or spanning the gap: the earliest holds
            (ep(150, 250), first.clone()),
            (ep(0, 100), first.clone()),
            (ep(500, 600), second),
            (ep(190, 410), first),
            // before, between and after: new, kept in start order
            (ep(0, 99), new(&[ep(0, 99), held[0], held[1]])),
            (ep(250, 350), new(&[held[0], ep(250, 350), held[1]])),
            (ep(501, 601), new(&[held[0], held[1], ep(501, 601)])),
        ];
        for (wanted, outcome) in cases {
            assert_eq!(decide_claim(&held, wanted), outcome, "{wanted:?}");
        }
        assert_eq!(decide_claim(&[], ep(1, 2)), new(&[ep(1, 2)]));
    }

    #[test]
    fn the_history_keeps_the_latest_and_folds_what_it_may_have_forgotten() {
        let at = |i: i64| ep(i * 1000, i * 1000 + 600);
        let full: Vec<Episode> = (1..=EPISODES_KEPT as i64).map(at).collect();
        // a new latest one pushes the oldest out
        let ClaimOutcome::Claimed(next) = decide_claim(&full, at(100)) else {
            panic!("a later episode is new");
        };
        assert_eq!(next.len(), EPISODES_KEPT);
        assert_eq!(next.first(), Some(&at(2)));
        assert_eq!(next.last(), Some(&at(100)));
        // one between two remembered ones is still new (the oldest goes)
        let ClaimOutcome::Claimed(next) = decide_claim(&full, ep(1700, 1800)) else {
            panic!("a gap episode is new");
        };
        assert_eq!(next.len(), EPISODES_KEPT);
        assert!(next.contains(&ep(1700, 1800)) && !next.contains(&at(1)));
        // older than everything remembered once the history is full: maybe forgotten, so
        // the oldest remembered one holds (no second alert for a forgotten episode)
        assert_eq!(decide_claim(&full, ep(0, 600)), ClaimOutcome::Held(at(1)));
        // with room left nothing was forgotten: it is new
        assert_eq!(
            decide_claim(&full[1..], ep(0, 600)),
            ClaimOutcome::Claimed([&[ep(0, 600)][..], &full[1..]].concat())
        );
    }
}

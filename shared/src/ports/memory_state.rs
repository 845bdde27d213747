//! [`MemCorrelationState`]: correlation state in memory, for the CLI (one process sees the
//! whole input) and for tests. Same contract as the DynamoDB adapter, including the set cap
//! and the episode claim; it can be told to fail to test retry decisions.

use super::state::{
    decide_claim, ClaimOutcome, CorrelationState, Episode, Member, SetSizes, StateItem, StateKey,
    StateUpdate,
};
use super::PortError;
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

/// Seeded fast hashing (keys and values come from the logs).
type Seeded = foldhash::fast::RandomState;

#[derive(Debug, Default)]
struct Inner {
    items: HashMap<MemKey, MemItem, Seeded>,
    /// Set and scalar names and scalar values, interned: names are a handful (`e`, `d`,
    /// `n`, `correlation`, ...), the correlation id and the bucket repeat across items, and
    /// a group's text is shared by every correlation grouping by the same fields.
    strings: Vec<Arc<str>>,
    string_ids: HashMap<Arc<str>, u32, Seeded>,
    /// The episodes each group claimed (see [`decide_claim`]).
    episodes: HashMap<StateKey, Vec<Episode>>,
    fail_next: Vec<PortError>,
    updates: usize,
}

/// A scan of a busy account holds one item per principal, correlation and day, most with a
/// few members: items are stored compactly (members as numbers where the string is a
/// canonical rendering of one, keys as a 128-bit digest) and rebuilt as [`StateItem`]s
/// when read. Nothing lists keys, so the digest is all a key needs to be (two keys collide
/// with a probability of about n²/2¹²⁹: nil for any number of items that fit in memory).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct MemKey(u128);

impl MemKey {
    fn of(k: &StateKey) -> MemKey {
        use sha2::{Digest, Sha256};
        let mut h = Sha256::new();
        // length-prefixed: ("ab", "c") and ("a", "bc") differ
        h.update((k.pk.len() as u64).to_le_bytes());
        h.update(k.pk.as_bytes());
        h.update(k.sk.as_bytes());
        let d = h.finalize();
        let mut first = [0u8; 16];
        first.copy_from_slice(&d[..16]);
        MemKey(u128::from_le_bytes(first))
    }
}

#[derive(Debug, Default)]
struct MemItem {
    /// Members that are twelve lowercase hex digits (ratio events, the bulk of a long
    /// scan's state) as one `u64` each: the set name's id in the top 16 bits, the 48-bit
    /// number below ([`pack`]); sorted, so by name and then number, found by binary search.
    hex: Vec<u64>,
    /// (name, member) of the other members, sorted.
    members: Vec<(u32, Stored)>,
    /// (name, interned value).
    scalars: Box<[(u32, u32)]>,
    /// The latest `expires_at` written (see [`MemCorrelationState::evict_expired`]).
    expires_at: i64,
}

/// A set member other than [`Parsed::Hex`]. `TimedHex` is used only when rendering gives
/// back the exact string, so equality of members is equality of strings.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Stored {
    /// `<i64>|<twelve lowercase hex digits>`.
    TimedHex(i64, u64),
    Text(Box<str>),
}

/// A member as stored: twelve lowercase hex digits as their number, the rest as [`Stored`].
enum Parsed {
    Hex(u64),
    Other(Stored),
}

fn hex12(s: &str) -> Option<u64> {
    let ok = s.len() == 12 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
    ok.then(|| u64::from_str_radix(s, 16).ok()).flatten()
}

impl Parsed {
    fn of(s: &str) -> Parsed {
        if let Some(h) = hex12(s) {
            return Parsed::Hex(h);
        }
        if let Some((t, h)) = s.split_once('|') {
            if let (Ok(time), Some(hash)) = (t.parse::<i64>(), hex12(h)) {
                if time.to_string() == t {
                    return Parsed::Other(Stored::TimedHex(time, hash));
                }
            }
        }
        Parsed::Other(Stored::Text(s.into()))
    }

    /// `m` as [`Parsed::of`] its rendering would give, without rendering numbers that have a
    /// compact form.
    fn of_member(m: &Member) -> Parsed {
        const HEX12: u64 = 1 << 48;
        match m {
            Member::Hash(h) if *h < HEX12 => Parsed::Hex(*h),
            Member::Timed(t, h) if *h < HEX12 => Parsed::Other(Stored::TimedHex(*t, *h)),
            Member::Text(t) => Parsed::of(t),
            other => Parsed::Other(Stored::Text(other.render().into())),
        }
    }
}

impl Stored {
    fn render(&self) -> String {
        match self {
            Stored::TimedHex(t, h) => Member::Timed(*t, *h).render(),
            Stored::Text(t) => t.to_string(),
        }
    }
}

impl Inner {
    /// The id of `s` in the string table (names and scalar values).
    fn intern(&mut self, s: &str) -> u32 {
        if let Some(&id) = self.string_ids.get(s) {
            return id;
        }
        let id = u32::try_from(self.strings.len()).unwrap_or(u32::MAX);
        let s: Arc<str> = Arc::from(s);
        self.strings.push(s.clone());
        self.string_ids.insert(s, id);
        id
    }

    /// How many members each of the sets `names` of the item at `key` holds, in order (an
    /// item that does not exist, or a name never interned, holds none).
    fn sizes(&self, key: &MemKey, names: &[&str]) -> Vec<usize> {
        let item = self.items.get(key);
        names
            .iter()
            .map(|n| match (self.string_ids.get(*n), item) {
                (Some(&id), Some(item)) => item.len_of(id),
                _ => 0,
            })
            .collect()
    }

    fn string(&self, id: u32) -> &str {
        self.strings.get(id as usize).map_or("", |s| &**s)
    }

    /// Apply `u` (see [`CorrelationState::add`]): the key of the item and whether the update
    /// was refused.
    fn apply(&mut self, u: &StateUpdate) -> (MemKey, bool) {
        self.updates += 1;
        let key = MemKey::of(&u.key);
        // an update names a few sets and scalars: their ids on the stack
        let mut sets: SmallIds = SmallIds::new();
        for n in u.add.keys() {
            sets.push(self.intern(n));
        }
        // most updates meet an item that has every scalar: their values need no interning
        let existed = self.items.contains_key(&key);
        let mut scalars_if_absent = Vec::new();
        for (name, value) in &u.set_if_absent {
            let name = self.intern(name);
            let missing = self
                .items
                .get(&key)
                .is_none_or(|item| !item.has_scalar(name));
            if missing {
                scalars_if_absent.push((name, self.intern(value)));
            }
        }
        let mut scalars = Vec::with_capacity(u.set.len());
        for (n, v) in &u.set {
            scalars.push((self.intern(n), self.intern(v)));
        }
        let item = self.items.entry(key).or_default();
        let full = sets.as_slice().iter().any(|&n| item.len_of(n) >= u.cap);
        // a refused update changes nothing, its expiry included (as in DynamoDB)
        if !full {
            item.expires_at = item.expires_at.max(u.expires_at);
            for (&n, members) in sets.as_slice().iter().zip(u.add.values()) {
                item.insert_all(n, members);
            }
            item.set_scalars(scalars_if_absent.into_iter(), true);
            item.set_scalars(scalars.into_iter(), false);
        } else if !existed {
            self.items.remove(&key);
        }
        (key, full)
    }

    fn view(&self, item: &MemItem) -> StateItem {
        let name = |id: u32| self.string(id).to_owned();
        let mut out = StateItem::default();
        // both lists are sorted by set name first: one name per run, not per member
        for run in item.hex.chunk_by(|a, b| unpack(*a).0 == unpack(*b).0) {
            if let Some(&first) = run.first() {
                out.sets
                    .entry(name(unpack(first).0))
                    .or_default()
                    .extend(run.iter().map(|&p| Member::Hash(unpack(p).1).render()));
            }
        }
        for run in item.members.chunk_by(|a, b| a.0 == b.0) {
            if let Some((n, _)) = run.first() {
                out.sets
                    .entry(name(*n))
                    .or_default()
                    .extend(run.iter().map(|(_, m)| m.render()));
            }
        }
        out.scalars = item
            .scalars
            .iter()
            .map(|&(n, v)| (name(n), self.string(v).to_owned()))
            .collect::<BTreeMap<_, _>>();
        out
    }
}

/// Up to eight ids without an allocation (an update names one to three sets), more on the
/// heap.
enum SmallIds {
    Inline(usize, [u32; 8]),
    Heap(Vec<u32>),
}

impl SmallIds {
    fn new() -> SmallIds {
        SmallIds::Inline(0, [0; 8])
    }

    fn push(&mut self, id: u32) {
        match self {
            SmallIds::Inline(n, ids) if *n < ids.len() => {
                if let Some(slot) = ids.get_mut(*n) {
                    *slot = id;
                }
                *n += 1;
            }
            SmallIds::Inline(n, ids) => {
                let mut v = ids.get(..*n).unwrap_or_default().to_vec();
                v.push(id);
                *self = SmallIds::Heap(v);
            }
            SmallIds::Heap(v) => v.push(id),
        }
    }

    fn as_slice(&self) -> &[u32] {
        match self {
            SmallIds::Inline(n, ids) => ids.get(..*n).unwrap_or_default(),
            SmallIds::Heap(v) => v,
        }
    }
}

/// A set name id and a 48-bit member in one `u64` (`None` when the id needs more than 16
/// bits). The order of packed values is the order of (name, member).
fn pack(name: u32, member: u64) -> Option<u64> {
    (name < 1 << 16 && member < 1 << 48).then(|| (u64::from(name) << 48) | member)
}

fn unpack(packed: u64) -> (u32, u64) {
    ((packed >> 48) as u32, packed & ((1 << 48) - 1))
}

impl MemItem {
    fn len_of(&self, name: u32) -> usize {
        let count = |start: usize, end: usize| end - start;
        count(
            self.hex.partition_point(|&p| unpack(p).0 < name),
            self.hex.partition_point(|&p| unpack(p).0 <= name),
        ) + count(
            self.members.partition_point(|(n, _)| *n < name),
            self.members.partition_point(|(n, _)| *n <= name),
        )
    }

    /// Add `members` to set `name`: the compact ones merged in one pass (a ratio bucket
    /// holds up to thousands), the others one by one.
    fn insert_all(&mut self, name: u32, members: &[Member]) {
        let mut packed = Vec::with_capacity(members.len());
        for m in members {
            match Parsed::of_member(m) {
                Parsed::Hex(h) => match pack(name, h) {
                    Some(p) => packed.push(p),
                    // a set name interned after 65,536 strings: stored as text
                    None => insert_sorted(
                        &mut self.members,
                        (name, Stored::Text(Member::Hash(h).render().into())),
                    ),
                },
                Parsed::Other(m) => insert_sorted(&mut self.members, (name, m)),
            }
        }
        merge_sorted(&mut self.hex, packed);
    }

    fn has_scalar(&self, name: u32) -> bool {
        self.scalars.iter().any(|(n, _)| *n == name)
    }

    /// Set the scalars `values` (all, or only those the item does not have yet).
    fn set_scalars(&mut self, values: impl Iterator<Item = (u32, u32)>, only_absent: bool) {
        // most updates change nothing here (the item has its scalars): no copy for them
        let mut all: Option<Vec<(u32, u32)>> = None;
        for (name, value) in values {
            let current = all.as_deref().unwrap_or(&self.scalars);
            match current.iter().position(|(n, _)| *n == name) {
                Some(_) if only_absent => {}
                Some(at) if current.get(at).is_some_and(|&(_, v)| v == value) => {}
                Some(at) => {
                    let all = all.get_or_insert_with(|| self.scalars.to_vec());
                    if let Some(slot) = all.get_mut(at) {
                        slot.1 = value;
                    }
                }
                None => all
                    .get_or_insert_with(|| self.scalars.to_vec())
                    .push((name, value)),
            }
        }
        if let Some(all) = all {
            self.scalars = all.into_boxed_slice();
        }
    }
}

/// Merge `new` (any order, repeats allowed) into the sorted, repeat-free `v`.
fn merge_sorted(v: &mut Vec<u64>, mut new: Vec<u64>) {
    new.sort_unstable();
    new.dedup();
    new.retain(|x| v.binary_search(x).is_err());
    if new.is_empty() {
        return;
    }
    if v.len() < 16 {
        // most items hold a few members: no doubling for them
        v.reserve_exact(new.len());
    }
    // from the back: each old member moves once
    let (mut i, mut j) = (v.len(), new.len());
    v.resize(i + j, 0);
    let mut out = v.len();
    while j > 0 {
        out -= 1;
        let take_new = i == 0 || new[j - 1] > v[i - 1];
        if take_new {
            j -= 1;
            v[out] = new[j];
        } else {
            i -= 1;
            v[out] = v[i];
        }
    }
}

/// Insert `x` into the sorted `v` unless present; most items hold a few members, so small
/// lists grow one by one and larger ones as usual.
fn insert_sorted<T: Ord>(v: &mut Vec<T>, x: T) {
    if let Err(at) = v.binary_search(&x) {
        if v.len() < 16 {
            v.reserve_exact(1);
        }
        v.insert(at, x);
    }
}

/// Correlation state in a `Mutex<HashMap>`; clones share the state.
#[derive(Debug, Default, Clone)]
pub struct MemCorrelationState(Arc<Mutex<Inner>>);

fn poisoned(op: &'static str) -> PortError {
    PortError::Permanent {
        op,
        message: "in-memory state lock poisoned".into(),
    }
}

impl MemCorrelationState {
    /// Make the next calls fail with these errors, in order.
    pub fn fail_next(&self, errors: Vec<PortError>) {
        if let Ok(mut g) = self.0.lock() {
            g.fail_next = errors;
        }
    }

    /// How many items exist (episodes not included).
    pub fn len(&self) -> usize {
        self.0.lock().map_or(0, |g| g.items.len())
    }

    /// Whether no item exists.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// How many `add` calls succeeded (to check batching).
    pub fn updates(&self) -> usize {
        self.0.lock().map_or(0, |g| g.updates)
    }

    /// Drop the items whose `expires_at` is before `before` (what a TTL does in DynamoDB);
    /// returns how many. Episode claims are kept (a handful per firing group).
    pub fn evict_expired(&self, before: i64) -> usize {
        let Ok(mut g) = self.0.lock() else {
            return 0;
        };
        let was = g.items.len();
        g.items.retain(|_, item| item.expires_at >= before);
        was - g.items.len()
    }

    /// A copy of one item.
    pub fn item(&self, key: &StateKey) -> Option<StateItem> {
        let g = self.0.lock().ok()?;
        g.items.get(&MemKey::of(key)).map(|i| g.view(i))
    }

    fn take_failure(g: &mut Inner) -> Result<(), PortError> {
        if g.fail_next.is_empty() {
            Ok(())
        } else {
            Err(g.fail_next.remove(0))
        }
    }
}

impl CorrelationState for MemCorrelationState {
    const IMMEDIATE: bool = true;

    async fn add(&self, u: &StateUpdate) -> Result<StateItem, PortError> {
        let mut g = self.0.lock().map_err(|_| poisoned("UpdateItem"))?;
        Self::take_failure(&mut g)?;
        let (key, full) = g.apply(u);
        let mut out = g.items.get(&key).map(|i| g.view(i)).unwrap_or_default();
        out.full = full;
        Ok(out)
    }

    async fn add_counting(&self, u: &StateUpdate, names: &[&str]) -> Result<SetSizes, PortError> {
        let mut g = self.0.lock().map_err(|_| poisoned("UpdateItem"))?;
        Self::take_failure(&mut g)?;
        let (key, full) = g.apply(u);
        Ok(SetSizes {
            sizes: g.sizes(&key, names),
            full,
        })
    }

    async fn get(&self, key: &StateKey) -> Result<Option<StateItem>, PortError> {
        let mut g = self.0.lock().map_err(|_| poisoned("GetItem"))?;
        Self::take_failure(&mut g)?;
        Ok(g.items.get(&MemKey::of(key)).map(|i| g.view(i)))
    }

    async fn count_pair(
        &self,
        below: &StateKey,
        above: &StateKey,
        names: &[&str],
    ) -> Result<[Vec<usize>; 2], PortError> {
        let mut g = self.0.lock().map_err(|_| poisoned("Query"))?;
        Self::take_failure(&mut g)?;
        Ok([
            g.sizes(&MemKey::of(below), names),
            g.sizes(&MemKey::of(above), names),
        ])
    }

    async fn claim(
        &self,
        key: &StateKey,
        wanted: Episode,
        _expires_at: i64,
    ) -> Result<Episode, PortError> {
        let mut g = self.0.lock().map_err(|_| poisoned("UpdateItem"))?;
        Self::take_failure(&mut g)?;
        let held = g.episodes.get(key).map_or(&[][..], Vec::as_slice);
        match decide_claim(held, wanted) {
            ClaimOutcome::Held(episode) => Ok(episode),
            ClaimOutcome::Claimed(all) => {
                g.episodes.insert(key.clone(), all);
                Ok(wanted)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::{BTreeMap, BTreeSet};

    fn update(members: &[&str], cap: usize) -> StateUpdate {
        StateUpdate {
            key: StateKey {
                pk: "STATE#c#g".into(),
                sk: "0".into(),
            },
            add: BTreeMap::from([(
                "e".to_owned(),
                members.iter().map(|m| Member::from(*m)).collect(),
            )]),
            set_if_absent: BTreeMap::from([("first".to_owned(), members.join(","))]),
            set: BTreeMap::new(),
            cap,
            expires_at: 1,
        }
    }

    #[tokio::test]
    async fn sets_dedupe_cap_refuses_and_first_write_wins() {
        let s = MemCorrelationState::default();
        let a = s.add(&update(&["1", "2"], 3)).await.unwrap();
        assert_eq!((a.len_of("e"), a.full), (2, false));
        let b = s.add(&update(&["2", "3"], 3)).await.unwrap();
        assert_eq!(b.len_of("e"), 3);
        assert_eq!(b.scalars["first"], "1,2");
        let c = s.add(&update(&["4"], 3)).await.unwrap();
        assert!(c.full);
        assert_eq!(c.len_of("e"), 3);
        assert_eq!(s.updates(), 3);
    }

    /// Only `add`: the trait's own `add_counting`.
    struct Plain(MemCorrelationState);

    impl CorrelationState for Plain {
        async fn add(&self, u: &StateUpdate) -> Result<StateItem, PortError> {
            self.0.add(u).await
        }
        async fn get(&self, k: &StateKey) -> Result<Option<StateItem>, PortError> {
            self.0.get(k).await
        }
        async fn claim(&self, k: &StateKey, e: Episode, x: i64) -> Result<Episode, PortError> {
            self.0.claim(k, e, x).await
        }
    }

    #[tokio::test]
    async fn counting_adds_answer_like_full_adds() {
        let fast = MemCorrelationState::default();
        let plain = Plain(MemCorrelationState::default());
        let names = ["e", "never", "e"];
        for (members, cap) in [(&["1", "2"][..], 3), (&["2", "3"][..], 3), (&["4"][..], 3)] {
            let u = update(members, cap);
            let a = fast.add_counting(&u, &names).await.unwrap();
            let b = plain.add_counting(&u, &names).await.unwrap();
            assert_eq!(a, b);
        }
        let last = fast.add_counting(&update(&["5"], 3), &["e"]).await.unwrap();
        assert_eq!(
            last,
            SetSizes {
                sizes: vec![3],
                full: true
            }
        );
        assert_eq!(fast.updates(), 4);
    }

    #[tokio::test]
    async fn counted_pairs_answer_like_read_pairs() {
        let fast = MemCorrelationState::default();
        let plain = Plain(MemCorrelationState::default());
        let key = |sk: &str| StateKey {
            pk: "STATE#c#g".into(),
            sk: sk.into(),
        };
        for state in [&fast, &plain.0] {
            state.add(&update(&["1", "2"], 10)).await.unwrap();
            let mut other = update(&["3"], 10);
            other.key = key("600");
            other.add.insert("f".to_owned(), vec![Member::Hash(7)]);
            state.add(&other).await.unwrap();
        }
        // both items, one item and a missing one, neither; a name no item holds
        let names = ["e", "f", "never"];
        for (below, above) in [("0", "600"), ("600", "1200"), ("-600", "1200")] {
            let a = fast
                .count_pair(&key(below), &key(above), &names)
                .await
                .unwrap();
            let b = plain
                .count_pair(&key(below), &key(above), &names)
                .await
                .unwrap();
            assert_eq!(a, b, "{below} {above}");
        }
        let both = fast
            .count_pair(&key("0"), &key("600"), &names)
            .await
            .unwrap();
        assert_eq!(both, [vec![2, 0, 0], vec![1, 1, 0]]);
    }

    #[tokio::test]
    async fn hex_members_of_a_late_set_name_are_kept_as_text() {
        let s = MemCorrelationState::default();
        if let Ok(mut g) = s.0.lock() {
            for i in 0..70_000 {
                g.intern(&format!("value-{i}"));
            }
        }
        let mut u = update(&["0123456789ab", "00000000000f"], 10);
        u.add = BTreeMap::from([("late".to_owned(), u.add["e"].clone())]);
        s.add(&u).await.unwrap();
        let again = s.add(&u).await.unwrap();
        assert_eq!(again.len_of("late"), 2);
        let want: BTreeSet<String> = ["0123456789ab", "00000000000f"]
            .iter()
            .map(|m| (*m).to_owned())
            .collect();
        assert_eq!(again.sets["late"], want);
        let g = s.0.lock().unwrap();
        let item = g.items.values().next().unwrap();
        assert_eq!((item.hex.len(), item.members.len()), (0, 2));
    }

    #[test]
    fn packing_keeps_the_order_of_name_then_member() {
        let a = pack(1, (1 << 48) - 1).unwrap();
        let b = pack(2, 0).unwrap();
        assert!(a < b);
        assert_eq!(unpack(a), (1, (1 << 48) - 1));
        assert_eq!(pack(1 << 16, 0), None);
        assert_eq!(pack(0, 1 << 48), None);
    }

    #[tokio::test]
    async fn eviction_drops_only_items_past_their_expiry() {
        let s = MemCorrelationState::default();
        let mut u = update(&["1"], 10);
        u.expires_at = 100;
        s.add(&u).await.unwrap();
        // an item's expiry is the latest written
        u.expires_at = 50;
        s.add(&u).await.unwrap();
        // a refused update leaves the expiry as it was
        let mut refused = update(&["2"], 1);
        refused.expires_at = 1_000;
        assert!(s.add(&refused).await.unwrap().full);
        let mut other = update(&["1"], 10);
        other.key.sk = "600".into();
        other.expires_at = 200;
        s.add(&other).await.unwrap();
        assert_eq!(s.evict_expired(100), 0);
        assert_eq!(s.evict_expired(101), 1);
        assert_eq!(s.len(), 1);
        assert!(s.item(&other.key).is_some());
        assert!(s.item(&u.key).is_none());
    }

    #[tokio::test]
    async fn claims_hold_until_their_end() {
        let s = MemCorrelationState::default();
        let k = StateKey {
            pk: "p".into(),
            sk: "EPISODE".into(),
        };
        let e1 = Episode {
            start: 100,
            end: 200,
        };
        assert_eq!(s.claim(&k, e1, 0).await.unwrap(), e1);
        let overlapping = Episode {
            start: 150,
            end: 250,
        };
        assert_eq!(s.claim(&k, overlapping, 0).await.unwrap(), e1);
        let later = Episode {
            start: 201,
            end: 301,
        };
        assert_eq!(s.claim(&k, later, 0).await.unwrap(), later);
    }

    #[tokio::test]
    async fn members_come_back_exactly_as_written() {
        let s = MemCorrelationState::default();
        let odd = [
            "0123456789ab",
            "0123456789AB",
            "00000000000f",
            "0123456789abc",
            "1794999600|0123456789ab",
            "-5|0123456789ab",
            "+5|0123456789ab",
            "007|0123456789ab",
            "1794999600|xyz",
            "1794999600",
            "1794999600|some value",
            "",
        ];
        let got = s.add(&update(&odd, 100)).await.unwrap();
        let want: BTreeSet<String> = odd.iter().map(|m| (*m).to_owned()).collect();
        assert_eq!(got.sets["e"], want);
        // a member stored compactly is still the same member when added again as a string
        let again = s
            .add(&update(&["0123456789ab", "-5|0123456789ab"], 100))
            .await
            .unwrap();
        assert_eq!(again.len_of("e"), odd.len());
    }

    #[tokio::test]
    async fn numbers_are_the_same_members_as_their_renderings() {
        let s = MemCorrelationState::default();
        let typed = vec![
            Member::Hash(0x0123_4567_89ab),
            Member::Hash(0xf),
            Member::Hash(1 << 50),
            Member::Timed(-5, 0x0123_4567_89ab),
            Member::Timed(7, 1 << 50),
            Member::Int(1_794_999_600),
        ];
        let mut u = update(&[], 100);
        u.add = BTreeMap::from([("e".to_owned(), typed.clone())]);
        let got = s.add(&u).await.unwrap();
        let want: BTreeSet<String> = typed.iter().map(Member::render).collect();
        assert_eq!(got.sets["e"], want);
        let texts: Vec<&str> = want.iter().map(String::as_str).collect();
        let again = s.add(&update(&texts, 100)).await.unwrap();
        assert_eq!(again.len_of("e"), typed.len());
    }

    #[test]
    fn merging_keeps_a_sorted_set() {
        let mut v: Vec<u64> = Vec::new();
        let mut model = BTreeSet::new();
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        for round in 0..200 {
            let new: Vec<u64> = (0..round % 37)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    x % 500
                })
                .collect();
            model.extend(new.iter().copied());
            merge_sorted(&mut v, new);
            assert_eq!(v, model.iter().copied().collect::<Vec<_>>());
        }
    }

    #[tokio::test]
    async fn scalars_keep_any_text_and_overwrite_only_when_asked() {
        let s = MemCorrelationState::default();
        let mut u = update(&["1"], 10);
        u.set_if_absent = BTreeMap::from([
            (
                "group".to_owned(),
                "arn:aws:sts::1:assumed-role/r/é:5:x".to_owned(),
            ),
            ("empty".to_owned(), String::new()),
        ]);
        u.set = BTreeMap::from([("last".to_owned(), "a:1:b".to_owned())]);
        s.add(&u).await.unwrap();
        u.set_if_absent
            .insert("group".to_owned(), "second writer".to_owned());
        u.set.insert("last".to_owned(), "c".to_owned());
        let got = s.add(&u).await.unwrap();
        assert_eq!(got.scalars["group"], "arn:aws:sts::1:assumed-role/r/é:5:x");
        assert_eq!(got.scalars["empty"], "");
        assert_eq!(got.scalars["last"], "c");
        assert_eq!(got.scalars.len(), 3);
    }

    #[tokio::test]
    async fn an_update_of_many_sets_adds_to_each_and_caps_each() {
        // more sets than the ids kept on the stack
        let s = MemCorrelationState::default();
        let mut u = update(&[], 2);
        u.add = (0..11)
            .map(|i| (format!("s{i}"), vec![Member::Int(i), Member::Int(100 + i)]))
            .collect();
        let got = s.add(&u).await.unwrap();
        assert!(!got.full);
        for i in 0..11 {
            let want = [format!("{}", 100 + i), format!("{i}")];
            let mut have: Vec<&str> = got.set(&format!("s{i}")).collect();
            have.sort_unstable();
            let mut want: Vec<&str> = want.iter().map(String::as_str).collect();
            want.sort_unstable();
            assert_eq!(have, want, "s{i}");
        }
        // every set is at the cap: one more member anywhere refuses the whole update
        u.add = BTreeMap::from([("s10".to_owned(), vec![Member::Int(7)])]);
        let again = s.add(&u).await.unwrap();
        assert!(again.full);
        assert_eq!(again.len_of("s10"), 2);
    }
}

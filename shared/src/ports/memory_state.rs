//! [`MemCorrelationState`]: correlation state in memory, for the CLI (one process sees the
//! whole input) and for tests. Same contract as the DynamoDB adapter, including the set cap
//! and the episode claim; it can be told to fail to test retry decisions.

use super::state::{CorrelationState, Episode, StateItem, StateKey, StateUpdate};
use super::PortError;
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

#[derive(Debug, Default)]
struct Inner {
    items: HashMap<MemKey, MemItem>,
    /// Set and scalar names, interned (a handful: `e`, `d`, `n`, `correlation`, ...).
    names: Vec<Box<str>>,
    episodes: HashMap<StateKey, Episode>,
    fail_next: Vec<PortError>,
    updates: usize,
}

/// A scan of a busy account holds one item per principal, correlation and day, most with a
/// few members: items are stored compactly (members as numbers where the string is a
/// canonical rendering of one) and rebuilt as [`StateItem`]s when read.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct MemKey {
    /// `pk` then `sk`, split at `pk_len`.
    text: Box<str>,
    pk_len: usize,
}

impl MemKey {
    fn of(k: &StateKey) -> MemKey {
        let mut text = String::with_capacity(k.pk.len() + k.sk.len());
        text.push_str(&k.pk);
        text.push_str(&k.sk);
        MemKey {
            text: text.into_boxed_str(),
            pk_len: k.pk.len(),
        }
    }
}

#[derive(Debug, Default)]
struct MemItem {
    /// (name, member), sorted: a member is found by binary search.
    members: Vec<(u16, Stored)>,
    /// `<name>:<byte length>:<value>` one after another (one allocation per item).
    scalars: Box<str>,
}

/// A set member. `Hex` and `TimedHex` are used only when rendering gives back the exact
/// string, so equality of members is equality of strings.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Stored {
    /// Twelve lowercase hex digits.
    Hex(u64),
    /// `<i64>|<twelve lowercase hex digits>`.
    TimedHex(i64, u64),
    Text(Box<str>),
}

fn hex12(s: &str) -> Option<u64> {
    let ok = s.len() == 12 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
    ok.then(|| u64::from_str_radix(s, 16).ok()).flatten()
}

impl Stored {
    fn of(s: &str) -> Stored {
        if let Some(h) = hex12(s) {
            return Stored::Hex(h);
        }
        if let Some((t, h)) = s.split_once('|') {
            if let (Ok(time), Some(hash)) = (t.parse::<i64>(), hex12(h)) {
                if time.to_string() == t {
                    return Stored::TimedHex(time, hash);
                }
            }
        }
        Stored::Text(s.into())
    }

    fn render(&self) -> String {
        match self {
            Stored::Hex(h) => format!("{h:012x}"),
            Stored::TimedHex(t, h) => format!("{t}|{h:012x}"),
            Stored::Text(t) => t.to_string(),
        }
    }
}

impl Inner {
    fn name(&mut self, name: &str) -> u16 {
        if let Some(i) = self.names.iter().position(|n| &**n == name) {
            return u16::try_from(i).unwrap_or(u16::MAX);
        }
        self.names.push(name.into());
        u16::try_from(self.names.len() - 1).unwrap_or(u16::MAX)
    }

    fn view(&self, item: &MemItem) -> StateItem {
        let name = |i: u16| {
            self.names
                .get(usize::from(i))
                .map_or_else(String::new, |n| n.to_string())
        };
        let mut out = StateItem::default();
        for (n, m) in &item.members {
            out.sets.entry(name(*n)).or_default().insert(m.render());
        }
        out.scalars = item
            .scalars()
            .into_iter()
            .map(|(n, v)| (name(n), v.to_owned()))
            .collect::<BTreeMap<_, _>>();
        out
    }
}

impl MemItem {
    fn len_of(&self, name: u16) -> usize {
        let start = self.members.partition_point(|(n, _)| *n < name);
        let end = self.members.partition_point(|(n, _)| *n <= name);
        end - start
    }

    fn insert(&mut self, name: u16, m: Stored) {
        let at = self
            .members
            .binary_search_by(|(n, x)| (*n, x).cmp(&(name, &m)));
        if let Err(at) = at {
            // most items hold a few members: grow them one by one, larger sets as usual
            if self.members.len() < 16 {
                self.members.reserve_exact(1);
            }
            self.members.insert(at, (name, m));
        }
    }

    fn scalars(&self) -> Vec<(u16, &str)> {
        let mut out = Vec::new();
        let mut rest: &str = &self.scalars;
        while let Some((name, tail)) = rest.split_once(':') {
            let Some((len, tail)) = tail.split_once(':') else {
                break;
            };
            let (Ok(name), Ok(len)) = (name.parse::<u16>(), len.parse::<usize>()) else {
                break;
            };
            let (Some(value), Some(next)) = (tail.get(..len), tail.get(len..)) else {
                break;
            };
            out.push((name, value));
            rest = next;
        }
        out
    }

    /// Set the scalars `values` (all, or only those the item does not have yet).
    fn set_scalars<'v>(&mut self, values: impl Iterator<Item = (u16, &'v str)>, only_absent: bool) {
        let mut all: Vec<(u16, String)> = self
            .scalars()
            .into_iter()
            .map(|(n, v)| (n, v.to_owned()))
            .collect();
        let mut changed = false;
        for (name, value) in values {
            match all.iter_mut().find(|(n, _)| *n == name) {
                Some(_) if only_absent => {}
                Some((_, old)) => {
                    value.clone_into(old);
                    changed = true;
                }
                None => {
                    all.push((name, value.to_owned()));
                    changed = true;
                }
            }
        }
        if changed {
            let mut text = String::new();
            for (n, v) in all {
                text.push_str(&format!("{n}:{}:", v.len()));
                text.push_str(&v);
            }
            self.scalars = text.into_boxed_str();
        }
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
    async fn add(&self, u: &StateUpdate) -> Result<StateItem, PortError> {
        let mut g = self.0.lock().map_err(|_| poisoned("UpdateItem"))?;
        Self::take_failure(&mut g)?;
        g.updates += 1;
        let sets: Vec<u16> = u.add.keys().map(|n| g.name(n)).collect();
        let scalars_if_absent: Vec<u16> = u.set_if_absent.keys().map(|n| g.name(n)).collect();
        let scalars: Vec<u16> = u.set.keys().map(|n| g.name(n)).collect();
        let inner = &mut *g;
        let item = inner.items.entry(MemKey::of(&u.key)).or_default();
        let full = sets.iter().any(|&n| item.len_of(n) >= u.cap);
        if !full {
            for (&n, members) in sets.iter().zip(u.add.values()) {
                for m in members {
                    item.insert(n, Stored::of(m));
                }
            }
            let if_absent = scalars_if_absent.iter().copied();
            item.set_scalars(
                if_absent.zip(u.set_if_absent.values().map(String::as_str)),
                true,
            );
            let always = scalars.iter().copied();
            item.set_scalars(always.zip(u.set.values().map(String::as_str)), false);
        }
        let key = MemKey::of(&u.key);
        let mut out = inner
            .items
            .get(&key)
            .map(|i| inner.view(i))
            .unwrap_or_default();
        out.full = full;
        Ok(out)
    }

    async fn get(&self, key: &StateKey) -> Result<Option<StateItem>, PortError> {
        let mut g = self.0.lock().map_err(|_| poisoned("GetItem"))?;
        Self::take_failure(&mut g)?;
        Ok(g.items.get(&MemKey::of(key)).map(|i| g.view(i)))
    }

    async fn claim(
        &self,
        key: &StateKey,
        wanted: Episode,
        _expires_at: i64,
    ) -> Result<Episode, PortError> {
        let mut g = self.0.lock().map_err(|_| poisoned("UpdateItem"))?;
        Self::take_failure(&mut g)?;
        match g.episodes.get(key) {
            Some(held) if held.end >= wanted.start => Ok(*held),
            _ => {
                g.episodes.insert(key.clone(), wanted);
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
                members
                    .iter()
                    .map(|m| (*m).to_owned())
                    .collect::<BTreeSet<_>>(),
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
}

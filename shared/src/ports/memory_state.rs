//! [`MemCorrelationState`]: correlation state in memory, for the CLI (one process sees the
//! whole input) and for tests. Same contract as the DynamoDB adapter, including the set cap
//! and the episode claim; it can be told to fail to test retry decisions.

use super::state::{CorrelationState, Episode, StateItem, StateKey, StateUpdate};
use super::PortError;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

#[derive(Debug, Default)]
struct Inner {
    items: HashMap<StateKey, StateItem>,
    episodes: HashMap<StateKey, Episode>,
    fail_next: Vec<PortError>,
    updates: usize,
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
        self.0.lock().ok()?.items.get(key).cloned()
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
        let item = g.items.entry(u.key.clone()).or_default();
        let full = u.add.keys().any(|name| item.len_of(name) >= u.cap);
        if full {
            let mut out = item.clone();
            out.full = true;
            return Ok(out);
        }
        for (name, members) in &u.add {
            item.sets
                .entry(name.clone())
                .or_default()
                .extend(members.iter().cloned());
        }
        for (k, v) in &u.set_if_absent {
            item.scalars.entry(k.clone()).or_insert_with(|| v.clone());
        }
        for (k, v) in &u.set {
            item.scalars.insert(k.clone(), v.clone());
        }
        Ok(item.clone())
    }

    async fn get(&self, key: &StateKey) -> Result<Option<StateItem>, PortError> {
        let mut g = self.0.lock().map_err(|_| poisoned("GetItem"))?;
        Self::take_failure(&mut g)?;
        Ok(g.items.get(key).cloned())
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
}

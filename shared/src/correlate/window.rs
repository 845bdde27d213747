//! Pure window arithmetic: given what the state holds, is there a window of `span` seconds
//! in which a correlation's condition holds, and where does the earliest one start?
//!
//! Every function sees the whole set of stored observations (never "the new ones"), so the
//! answer depends only on which events arrived, not on their order or repetition.

use crate::detect::{CmpOp, CorrelationCondition};
use std::collections::HashMap;

/// The smallest count at which `cond` can start to hold: the firing threshold used to bound
/// state. `None` when the condition has no lower bound (`lt`/`lte` only), which a streaming
/// evaluator cannot decide before a window closes, or when it can never hold.
pub fn threshold(cond: &CorrelationCondition) -> Option<u64> {
    let lower = cond
        .ops
        .iter()
        .filter_map(|(op, v)| match op {
            CmpOp::Gt => Some(v.saturating_add(1)),
            CmpOp::Gte | CmpOp::Eq => Some(*v),
            CmpOp::Lt | CmpOp::Lte => None,
        })
        .max()?;
    let lower = lower.max(1);
    cond.holds(lower).then_some(lower)
}

/// Earliest window `[t, t + span]` (starting at an observation) whose number of
/// observations satisfies `cond`: `(start, count)`.
pub fn count_window(
    times: &mut [i64],
    span: i64,
    cond: &CorrelationCondition,
) -> Option<(i64, u64)> {
    times.sort_unstable();
    let mut j = 0;
    for (i, &start) in times.iter().enumerate() {
        j = j.max(i);
        while times
            .get(j)
            .is_some_and(|&t| t <= start.saturating_add(span))
        {
            j += 1;
        }
        let count = (j - i) as u64;
        if cond.holds(count) {
            return Some((start, count));
        }
    }
    None
}

/// Earliest window whose number of distinct values satisfies `cond`: `(start, distinct)`.
pub fn value_window(
    members: &mut [(i64, &str)],
    span: i64,
    cond: &CorrelationCondition,
) -> Option<(i64, u64)> {
    members.sort_unstable();
    let mut counts: HashMap<&str, usize> = HashMap::new();
    let mut j = 0;
    for i in 0..members.len() {
        let Some(&(start, _)) = members.get(i) else {
            break;
        };
        while let Some(&(t, v)) = members.get(j) {
            if t > start.saturating_add(span) {
                break;
            }
            *counts.entry(v).or_default() += 1;
            j += 1;
        }
        let distinct = counts.len() as u64;
        if cond.holds(distinct) {
            return Some((start, distinct));
        }
        if let Some(&(_, v)) = members.get(i) {
            if let Some(c) = counts.get_mut(v) {
                *c -= 1;
                if *c == 0 {
                    counts.remove(v);
                }
            }
        }
    }
    None
}

/// Earliest window in which every step was seen (`ordered`: at non-decreasing times in the
/// listed order). `steps[i]` holds the times step `i` was seen; returns the window start.
pub fn temporal_window(steps: &mut [Vec<i64>], span: i64, ordered: bool) -> Option<i64> {
    for s in steps.iter_mut() {
        s.sort_unstable();
        s.dedup();
    }
    let first_at_or_after = |times: &[i64], t: i64| -> Option<i64> {
        let i = times.partition_point(|&x| x < t);
        times.get(i).copied()
    };
    if ordered {
        let (head, rest) = steps.split_first()?;
        'start: for &start in head {
            let end = start.saturating_add(span);
            let mut cur = start;
            for step in rest {
                match first_at_or_after(step, cur) {
                    Some(t) if t <= end => cur = t,
                    _ => continue 'start,
                }
            }
            return Some(start);
        }
        None
    } else {
        let mut starts: Vec<i64> = steps.iter().flatten().copied().collect();
        starts.sort_unstable();
        starts.dedup();
        starts.into_iter().find(|&start| {
            steps.iter().all(|step| {
                first_at_or_after(step, start).is_some_and(|t| t <= start.saturating_add(span))
            })
        })
    }
}

/// Whether a ratio detection holds: at least `min_count` numerator events, at least
/// `min_total` events in all, and numerator / total >= `min_percent` %.
pub fn ratio_holds(
    numerator: u64,
    total: u64,
    min_count: u64,
    min_percent: u64,
    min_total: u64,
) -> bool {
    numerator >= min_count
        && total >= min_total.max(1)
        && numerator.saturating_mul(100) >= min_percent.saturating_mul(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gte(n: u64) -> CorrelationCondition {
        CorrelationCondition {
            field: None,
            ops: vec![(CmpOp::Gte, n)],
        }
    }

    #[test]
    fn thresholds() {
        assert_eq!(threshold(&gte(10)), Some(10));
        let gt = CorrelationCondition {
            field: None,
            ops: vec![(CmpOp::Gt, 4)],
        };
        assert_eq!(threshold(&gt), Some(5));
        let range = CorrelationCondition {
            field: None,
            ops: vec![(CmpOp::Gte, 5), (CmpOp::Lte, 10)],
        };
        assert_eq!(threshold(&range), Some(5));
        let only_upper = CorrelationCondition {
            field: None,
            ops: vec![(CmpOp::Lt, 3)],
        };
        assert_eq!(threshold(&only_upper), None);
        let impossible = CorrelationCondition {
            field: None,
            ops: vec![(CmpOp::Gte, 5), (CmpOp::Lt, 3)],
        };
        assert_eq!(threshold(&impossible), None);
    }

    #[test]
    fn count_windows_slide_and_ignore_order() {
        // 3 events at 0..20, then 4 more from 100 s: 4 within 60 s only from 100
        let mut t = vec![150, 0, 10, 20, 100, 105, 110];
        assert_eq!(count_window(&mut t, 60, &gte(4)), Some((100, 4)));
        let mut t = vec![0, 61, 122];
        assert_eq!(count_window(&mut t, 60, &gte(2)), None);
        // the window is inclusive of its end
        let mut t = vec![0, 60];
        assert_eq!(count_window(&mut t, 60, &gte(2)), Some((0, 2)));
    }

    #[test]
    fn value_windows_count_distinct_values() {
        let mut m = vec![(0, "a"), (1, "a"), (2, "b"), (100, "c"), (101, "d")];
        assert_eq!(value_window(&mut m, 60, &gte(3)), None);
        let mut m = vec![(0, "a"), (50, "b"), (100, "c"), (101, "d"), (102, "d")];
        assert_eq!(value_window(&mut m, 60, &gte(3)), Some((50, 3)));
    }

    #[test]
    fn ordered_sequences_need_the_order() {
        let mut steps = vec![vec![100], vec![50, 200], vec![300]];
        assert_eq!(temporal_window(&mut steps, 3600, true), Some(100));
        let mut steps = vec![vec![100], vec![50], vec![300]];
        assert_eq!(temporal_window(&mut steps, 3600, true), None);
        // unordered: the same observations complete the sequence
        let mut steps = vec![vec![100], vec![50], vec![300]];
        assert_eq!(temporal_window(&mut steps, 3600, false), Some(50));
        // too far apart
        let mut steps = vec![vec![0], vec![4000]];
        assert_eq!(temporal_window(&mut steps, 3600, true), None);
        // a missing step never completes
        let mut steps = vec![vec![0], vec![]];
        assert_eq!(temporal_window(&mut steps, 3600, false), None);
    }

    #[test]
    fn ratios() {
        assert!(ratio_holds(30, 100, 20, 25, 50));
        assert!(!ratio_holds(24, 100, 20, 25, 50));
        assert!(!ratio_holds(10, 10, 20, 25, 5));
        assert!(!ratio_holds(30, 40, 20, 25, 50));
    }
}

//! What a trail's event selectors record: management events (read, write, excluded
//! sources) and S3 data events for one bucket. Basic `EventSelectors` and
//! `AdvancedEventSelectors` are both read; a trail has one kind or the other.

use crate::ports::trail::{AdvancedSelector, EventSelectors, FieldSelector, ReadWriteType};

/// Which halves of a class of events a trail records.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Coverage {
    /// Read-only events.
    pub read: bool,
    /// Write events.
    pub write: bool,
    /// Event sources excluded (or, with advanced selectors, a restriction to some sources).
    pub excluded: Vec<String>,
}

impl Coverage {
    /// Read and write, nothing excluded.
    pub fn is_complete(&self) -> bool {
        self.read && self.write && self.excluded.is_empty()
    }

    fn add(&mut self, read: bool, write: bool) {
        self.read |= read;
        self.write |= write;
    }

    /// A short description: `read+write`, `write only`, `none`, plus exclusions.
    pub fn describe(&self) -> String {
        let rw = match (self.read, self.write) {
            (true, true) => "read+write",
            (true, false) => "read only",
            (false, true) => "write only",
            (false, false) => "none",
        };
        if self.excluded.is_empty() {
            rw.to_owned()
        } else {
            format!("{rw}, excluding {}", self.excluded.join(", "))
        }
    }
}

fn field<'a>(sel: &'a AdvancedSelector, name: &str) -> Option<&'a FieldSelector> {
    sel.fields
        .iter()
        .find(|f| f.field.eq_ignore_ascii_case(name))
}

/// (read, write) allowed by an advanced selector's `readOnly` field (absent = both).
fn read_only_field(sel: &AdvancedSelector) -> (bool, bool) {
    let Some(f) = field(sel, "readOnly") else {
        return (true, true);
    };
    let allows = |v: &str| {
        let eq_ok = f.equals.is_empty() || f.equals.iter().any(|x| x.eq_ignore_ascii_case(v));
        let ne_ok = !f.not_equals.iter().any(|x| x.eq_ignore_ascii_case(v));
        eq_ok && ne_ok
    };
    (allows("true"), allows("false"))
}

fn category_is(sel: &AdvancedSelector, category: &str) -> bool {
    field(sel, "eventCategory").is_some_and(|f| {
        f.equals.iter().any(|x| x.eq_ignore_ascii_case(category))
            && !f
                .not_equals
                .iter()
                .any(|x| x.eq_ignore_ascii_case(category))
    })
}

/// Management events recorded by these selectors.
pub fn management_coverage(sel: &EventSelectors) -> Coverage {
    let mut c = Coverage::default();
    for b in sel.basic.iter().filter(|b| b.include_management_events) {
        match b.read_write {
            ReadWriteType::All => c.add(true, true),
            ReadWriteType::ReadOnly => c.add(true, false),
            ReadWriteType::WriteOnly => c.add(false, true),
        }
        c.excluded
            .extend(b.exclude_management_event_sources.iter().cloned());
    }
    for a in sel.advanced.iter().filter(|a| category_is(a, "Management")) {
        let (r, w) = read_only_field(a);
        c.add(r, w);
        if let Some(src) = field(a, "eventSource") {
            c.excluded.extend(src.not_equals.iter().cloned());
            if !src.equals.is_empty() || !src.starts_with.is_empty() {
                c.excluded.push("every source but the listed ones".into());
            }
        }
    }
    c.excluded.sort();
    c.excluded.dedup();
    c
}

/// Whether an ARN prefix selects objects of `bucket` (`arn:aws:s3` and `arn:aws:s3:::`
/// select every bucket; `arn:aws:s3:::bucket/...` part of it).
fn prefix_selects_bucket(prefix: &str, bucket: &str) -> bool {
    let bucket_arn = format!("arn:aws:s3:::{bucket}/");
    bucket_arn.starts_with(prefix) || prefix.starts_with(bucket_arn.as_str())
}

/// S3 object-level (data) events recorded for `bucket`.
pub fn s3_data_coverage(sel: &EventSelectors, bucket: &str) -> Coverage {
    let mut c = Coverage::default();
    for b in &sel.basic {
        let selects = b.data_resources.iter().any(|d| {
            d.kind == "AWS::S3::Object" && d.values.iter().any(|v| prefix_selects_bucket(v, bucket))
        });
        if selects {
            match b.read_write {
                ReadWriteType::All => c.add(true, true),
                ReadWriteType::ReadOnly => c.add(true, false),
                ReadWriteType::WriteOnly => c.add(false, true),
            }
        }
    }
    for a in sel.advanced.iter().filter(|a| category_is(a, "Data")) {
        let is_s3 = field(a, "resources.type")
            .is_some_and(|f| f.equals.iter().any(|x| x == "AWS::S3::Object"));
        if !is_s3 {
            continue;
        }
        let selects = match field(a, "resources.ARN") {
            None => true,
            Some(f) => {
                let bucket_arn = format!("arn:aws:s3:::{bucket}/");
                let positive = f
                    .starts_with
                    .iter()
                    .any(|p| prefix_selects_bucket(p, bucket))
                    || (f.starts_with.is_empty() && f.equals.is_empty());
                let excluded = f
                    .not_starts_with
                    .iter()
                    .any(|p| bucket_arn.starts_with(p.as_str()));
                positive && !excluded
            }
        };
        if selects {
            let (r, w) = read_only_field(a);
            c.add(r, w);
        }
    }
    c
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ports::trail::{BasicSelector, DataResource};

    fn fs(field: &str, equals: &[&str]) -> FieldSelector {
        FieldSelector {
            field: field.into(),
            equals: equals.iter().map(|s| s.to_string()).collect(),
            ..Default::default()
        }
    }

    #[test]
    fn basic_management_read_and_write_combine() {
        let mut s = EventSelectors {
            basic: vec![BasicSelector {
                read_write: ReadWriteType::WriteOnly,
                include_management_events: true,
                ..Default::default()
            }],
            ..Default::default()
        };
        assert_eq!(management_coverage(&s).describe(), "write only");
        s.basic.push(BasicSelector {
            read_write: ReadWriteType::ReadOnly,
            include_management_events: true,
            exclude_management_event_sources: vec!["kms.amazonaws.com".into()],
            ..Default::default()
        });
        let c = management_coverage(&s);
        assert!(c.read && c.write && !c.is_complete());
        assert_eq!(c.describe(), "read+write, excluding kms.amazonaws.com");
        s.basic[1].exclude_management_event_sources.clear();
        assert!(management_coverage(&s).is_complete());
        s.basic
            .iter_mut()
            .for_each(|b| b.include_management_events = false);
        assert_eq!(management_coverage(&s).describe(), "none");
    }

    #[test]
    fn advanced_management_and_read_only_field() {
        let mgmt = AdvancedSelector {
            name: None,
            fields: vec![fs("eventCategory", &["Management"])],
        };
        let s = EventSelectors {
            advanced: vec![mgmt.clone()],
            ..Default::default()
        };
        assert!(management_coverage(&s).is_complete());
        let mut ro = mgmt.clone();
        ro.fields.push(fs("readOnly", &["true"]));
        let s = EventSelectors {
            advanced: vec![ro],
            ..Default::default()
        };
        assert_eq!(management_coverage(&s).describe(), "read only");
        let mut no_kms = mgmt;
        no_kms.fields.push(FieldSelector {
            field: "eventSource".into(),
            not_equals: vec!["kms.amazonaws.com".into()],
            ..Default::default()
        });
        let s = EventSelectors {
            advanced: vec![no_kms],
            ..Default::default()
        };
        assert!(!management_coverage(&s).is_complete());
        let data_only = EventSelectors {
            advanced: vec![AdvancedSelector {
                name: None,
                fields: vec![fs("eventCategory", &["Data"])],
            }],
            ..Default::default()
        };
        assert_eq!(management_coverage(&data_only).describe(), "none");
    }

    #[test]
    fn s3_data_events_for_the_bucket() {
        let basic = |v: &str, rw| EventSelectors {
            basic: vec![BasicSelector {
                read_write: rw,
                include_management_events: true,
                data_resources: vec![DataResource {
                    kind: "AWS::S3::Object".into(),
                    values: vec![v.into()],
                }],
                ..Default::default()
            }],
            ..Default::default()
        };
        assert!(s3_data_coverage(&basic("arn:aws:s3", ReadWriteType::All), "logs").is_complete());
        assert!(
            s3_data_coverage(&basic("arn:aws:s3:::logs/", ReadWriteType::All), "logs")
                .is_complete()
        );
        assert!(s3_data_coverage(
            &basic("arn:aws:s3:::logs/AWSLogs/", ReadWriteType::All),
            "logs"
        )
        .is_complete());
        assert_eq!(
            s3_data_coverage(
                &basic("arn:aws:s3:::logsother/", ReadWriteType::All),
                "logs"
            )
            .describe(),
            "none"
        );
        assert_eq!(
            s3_data_coverage(
                &basic("arn:aws:s3:::logs/", ReadWriteType::WriteOnly),
                "logs"
            )
            .describe(),
            "write only"
        );
        let adv = |arn: Option<FieldSelector>| EventSelectors {
            advanced: vec![AdvancedSelector {
                name: Some("s3".into()),
                fields: [
                    Some(fs("eventCategory", &["Data"])),
                    Some(fs("resources.type", &["AWS::S3::Object"])),
                    arn,
                ]
                .into_iter()
                .flatten()
                .collect(),
            }],
            ..Default::default()
        };
        assert!(s3_data_coverage(&adv(None), "logs").is_complete());
        let starts = FieldSelector {
            field: "resources.ARN".into(),
            starts_with: vec!["arn:aws:s3:::logs/".into()],
            ..Default::default()
        };
        assert!(s3_data_coverage(&adv(Some(starts)), "logs").is_complete());
        let not = FieldSelector {
            field: "resources.ARN".into(),
            not_starts_with: vec!["arn:aws:s3:::logs/".into()],
            ..Default::default()
        };
        assert_eq!(s3_data_coverage(&adv(Some(not)), "logs").describe(), "none");
    }
}

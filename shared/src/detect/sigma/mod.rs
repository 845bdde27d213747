//! The Sigma rule engine: load rules (with `file:line` errors), compile them once into a
//! [`RuleSet`], and tell which rules match an [`Event`].
//!
//! Owns parsing, validation, compilation, the rule index and stateless matching. It does not
//! keep correlation state: correlation rules are parsed, validated and exposed through
//! [`RuleSet::correlations`] for a stateful evaluator that keeps its counters elsewhere.
//!
//! Speed: rules whose condition requires `eventName` (or `eventSource`) to be one of a
//! fixed set are indexed by that lowercase value, so an event only touches the rules that
//! could match it plus the few unindexed ones. Of those, the ones that need a value at some
//! other field (`errorCode`, `userIdentity.type` = `Root`) wait behind a [`Guard`] that reads
//! the field once per event for all of them. Each candidate is evaluated once, lazily
//! (fields are read through [`Event::any_value_at`] only when a condition needs them, borrowed
//! from the record's text, so evaluating a rule allocates nothing in the common case).

mod compile;
mod condition;
mod matcher;
pub(crate) mod yaml;

use super::{Event, ValueRef};
use crate::findings::Severity;
use compile::{Body, Ctx, Detection, FieldKind, FieldTest, RefHow};
use condition::Cond;
use std::collections::{HashMap, HashSet};
use std::fmt;
use std::path::Path;
use std::time::Duration;

/// Severity handling when the matched call failed (`errorCode` set).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FailedAttempts {
    /// Failed attempts are reported one severity lower (the default).
    #[default]
    Lower,
    /// Keep the severity: the rule is about failures (failed logins, denied calls).
    Keep,
}

/// A detection rule, compiled.
#[derive(Debug, Clone)]
pub struct Rule {
    /// Our id: the rule's `name` when present, else its Sigma `id`.
    pub id: String,
    /// The Sigma `id` (a UUID in SigmaHQ rules).
    pub sigma_id: Option<String>,
    /// The Sigma `name` (our pack's ids).
    pub name: Option<String>,
    /// `title`.
    pub title: String,
    /// `description` (empty when absent).
    pub description: String,
    /// `status` (`stable`, `test`, `experimental`, ...).
    pub status: Option<String>,
    /// `author`.
    pub author: Option<String>,
    /// `level` (`medium` when absent).
    pub level: Severity,
    /// `tags` (ATT&CK and others).
    pub tags: Vec<String>,
    /// `falsepositives`.
    pub falsepositives: Vec<String>,
    /// `references`.
    pub references: Vec<String>,
    /// `fields` worth showing with a finding.
    pub fields: Vec<String>,
    /// Our `failed_attempts: lower|keep`.
    pub failed_attempts: FailedAttempts,
    /// The file the rule was loaded from (as named to the loader).
    pub file: String,
    /// Line of the rule document in `file`.
    pub line: usize,
    /// The rule only feeds correlations (referenced with `generate: false`, or the base of a
    /// legacy `| count()` aggregation): a match is correlation input, not a finding.
    pub correlation_only: bool,
    pub(crate) detections: Vec<Detection>,
    pub(crate) condition: Cond,
}

impl Rule {
    /// The `eventName`s (lowercase, sorted) one of which this rule provably requires; empty
    /// when the rule is not restricted by `eventName`.
    pub fn indexed_event_names(&self) -> Vec<String> {
        let mut v: Vec<String> = required(&self.condition, &self.detections, "eventName")
            .unwrap_or_default()
            .into_iter()
            .collect();
        v.sort();
        v
    }
}

/// Sigma correlation types.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CorrelationType {
    /// Number of matching events per group within the timespan.
    EventCount,
    /// Number of distinct values of `condition.field` per group within the timespan.
    ValueCount,
    /// All referenced rules matched (in any order) per group within the timespan.
    Temporal,
    /// All referenced rules matched in the listed order per group within the timespan.
    TemporalOrdered,
}

/// Comparison operators of a correlation condition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CmpOp {
    /// `gt`
    Gt,
    /// `gte`
    Gte,
    /// `lt`
    Lt,
    /// `lte`
    Lte,
    /// `eq`
    Eq,
}

impl CmpOp {
    /// Whether `count` satisfies `self value`.
    pub fn holds(self, count: u64, value: u64) -> bool {
        match self {
            CmpOp::Gt => count > value,
            CmpOp::Gte => count >= value,
            CmpOp::Lt => count < value,
            CmpOp::Lte => count <= value,
            CmpOp::Eq => count == value,
        }
    }
}

/// The `condition` of a correlation rule: every comparison must hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CorrelationCondition {
    /// The counted field (`value_count`).
    pub field: Option<String>,
    /// Comparisons, e.g. `[(Gte, 10)]`, or `[(Gte, 5), (Lte, 10)]` for a range.
    pub ops: Vec<(CmpOp, u64)>,
}

impl CorrelationCondition {
    /// Whether a count satisfies every comparison.
    pub fn holds(&self, count: u64) -> bool {
        self.ops.iter().all(|(op, v)| op.holds(count, *v))
    }
}

/// A correlation field alias: one name for fields that differ between the referenced rules.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldAlias {
    /// The alias used in `group-by`.
    pub alias: String,
    /// `(rule id as referenced, field in that rule's events)`.
    pub fields: Vec<(String, String)>,
}

/// Our `trailwatch: ratio:` extension of an `event_count` correlation: the numerator rules'
/// share of all the correlation's events (other Sigma tools ignore the key and see a count).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CorrelationRatio {
    /// The rules counted in the numerator (resolved like [`CorrelationRule::rules`], a
    /// subset of them); the denominator is every event of the correlation's rules.
    pub numerator: Vec<String>,
    /// Lowest numerator share, in percent (0..=100).
    pub min_percent: u64,
    /// Fewest events in the denominator before the ratio is judged.
    pub min_total: u64,
}

/// A Sigma correlation rule, validated; evaluated by a stateful component.
#[derive(Debug, Clone)]
pub struct CorrelationRule {
    /// `name` when present, else the Sigma `id`.
    pub id: String,
    /// The Sigma `id`.
    pub sigma_id: Option<String>,
    /// `title`.
    pub title: String,
    /// `description`.
    pub description: String,
    /// `level`.
    pub level: Severity,
    /// `tags`.
    pub tags: Vec<String>,
    /// `falsepositives`.
    pub falsepositives: Vec<String>,
    /// `correlation.type`.
    pub kind: CorrelationType,
    /// Referenced rules, resolved to [`Rule::id`] (or another correlation's id), in order.
    pub rules: Vec<String>,
    /// `group-by` fields (dotted paths or aliases).
    pub group_by: Vec<String>,
    /// `timespan`.
    pub timespan: Duration,
    /// `condition` (required for counts; optional for temporal: all rules must match).
    pub condition: Option<CorrelationCondition>,
    /// `aliases`.
    pub aliases: Vec<FieldAlias>,
    /// `generate`: whether the referenced rules also produce their own findings.
    pub generate: bool,
    /// `trailwatch: ratio:` (only on `event_count`; `condition` bounds the numerator).
    pub ratio: Option<CorrelationRatio>,
    /// Source file.
    pub file: String,
    /// Line of the document in `file`.
    pub line: usize,
}

/// A rule that cannot be loaded (or, from [`RuleSet::warnings`], a warning).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadError {
    /// File name as given to the loader.
    pub file: String,
    /// 1-based line, when known.
    pub line: Option<usize>,
    /// What is wrong, lowercase, no trailing period.
    pub message: String,
}

impl fmt::Display for LoadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(line) => write!(f, "{}:{}: {}", self.file, line, self.message),
            None => write!(f, "{}: {}", self.file, self.message),
        }
    }
}

impl std::error::Error for LoadError {}

/// Loader options.
#[derive(Debug, Clone, Default)]
pub struct LoadOptions {
    /// Values for `%placeholder%` in `field|expand` selections, by placeholder name
    /// (without `%`). A placeholder with no value makes its selection never match.
    pub placeholders: HashMap<String, Vec<String>>,
}

/// Which event attribute a rule is indexed under.
#[derive(Debug, Clone, Copy)]
enum IndexKey {
    Name,
    Source,
}

/// A compiled, indexed set of rules. `Send + Sync`: share one per process.
#[derive(Debug, Default)]
pub struct RuleSet {
    rules: Vec<Rule>,
    correlations: Vec<CorrelationRule>,
    warnings: Vec<LoadError>,
    by_name: IndexMap,
    by_source: IndexMap,
    /// Rules not indexed by name or source that need a value at some field.
    guards: Vec<Guard>,
    always: Vec<usize>,
}

/// The rules not indexed by `eventName`/`eventSource` whose condition provably needs a value
/// at `path` (`errorCode` for the denied-call rules, `userIdentity.type` = `Root` for the
/// root-usage ones): a record reads the field once for all of them and evaluates only those
/// it can satisfy, instead of every such rule reading it for every record.
#[derive(Debug, Default)]
struct Guard {
    path: FieldPath,
    /// Rules needing one of a few values at `path`, by lowercase value.
    by_value: IndexMap,
    /// Every rule of `by_value`, each once: evaluated when the field holds several values or
    /// one that is not a string.
    valued: Vec<usize>,
    /// Rules needing any value at `path`.
    present: Vec<usize>,
}

/// A dotted field path, split.
type FieldPath = Box<[Box<str>]>;

/// Fields that only sort records into a few broad kinds: their common values (`AwsApiCall`,
/// `Management`, `true`) cover most records, so a [`Guard`] on their values would read a field
/// for every record to skip almost none (measured: a guard on `eventType` for the principal
/// activity rule cost ~570 instructions per record and saved nothing).
const CATEGORIES: &[&str] = &[
    "eventType",
    "eventCategory",
    "managementEvent",
    "readOnly",
    "eventVersion",
];

/// Fields CloudTrail writes in (nearly) every record: a rule that only needs one of them to
/// be present gains nothing from a [`Guard`].
const EVERY_RECORD: &[&str] = &[
    "eventVersion",
    "userIdentity",
    "eventTime",
    "eventSource",
    "eventName",
    "awsRegion",
    "sourceIPAddress",
    "userAgent",
    "requestID",
    "eventID",
    "eventType",
    "recipientAccountId",
    "readOnly",
    "managementEvent",
    "eventCategory",
];

pub(crate) mod bundled {
    include!(concat!(env!("OUT_DIR"), "/bundled_rules.rs"));
}

impl RuleSet {
    /// Load rules from `(file name, yaml)` pairs.
    ///
    /// # Errors
    /// Every rule that cannot be loaded, each with its file and (when known) line.
    pub fn from_sources<'a>(
        sources: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> Result<RuleSet, Vec<LoadError>> {
        Self::from_sources_with(sources, &LoadOptions::default())
    }

    /// [`RuleSet::from_sources`] with placeholders.
    ///
    /// # Errors
    /// As [`RuleSet::from_sources`].
    pub fn from_sources_with<'a>(
        sources: impl IntoIterator<Item = (&'a str, &'a str)>,
        opts: &LoadOptions,
    ) -> Result<RuleSet, Vec<LoadError>> {
        let mut errors = Vec::new();
        let mut warnings = Vec::new();
        let mut rules = Vec::new();
        let mut correlations = Vec::new();
        for (file, text) in sources {
            let docs = match yaml::parse_documents(text) {
                Ok(d) => d,
                Err(e) => {
                    errors.push(LoadError {
                        file: file.to_owned(),
                        line: e.line,
                        message: e.message,
                    });
                    continue;
                }
            };
            if docs.is_empty() {
                errors.push(LoadError {
                    file: file.to_owned(),
                    line: None,
                    message: "file holds no rule".into(),
                });
            }
            let mut ctx = Ctx {
                file,
                placeholders: &opts.placeholders,
                warnings: &mut warnings,
            };
            for doc in &docs {
                match compile::compile_document(doc, &mut ctx) {
                    Ok(c) => {
                        rules.extend(c.rules);
                        correlations.extend(c.correlations);
                    }
                    Err(e) => errors.extend(e),
                }
            }
        }
        resolve(&mut rules, &mut correlations, &mut errors);
        if !errors.is_empty() {
            return Err(errors);
        }
        let mut set = RuleSet {
            rules,
            correlations,
            warnings,
            ..RuleSet::default()
        };
        set.build_index();
        Ok(set)
    }

    /// Load every `*.yml`/`*.yaml` below `dir`, skipping any `tests/` folder.
    ///
    /// # Errors
    /// Unreadable files and every rule that cannot be loaded.
    pub fn from_dir(dir: &Path) -> Result<RuleSet, Vec<LoadError>> {
        Self::from_dir_with(dir, &LoadOptions::default())
    }

    /// [`RuleSet::from_dir`] with placeholders.
    ///
    /// # Errors
    /// As [`RuleSet::from_dir`].
    pub fn from_dir_with(dir: &Path, opts: &LoadOptions) -> Result<RuleSet, Vec<LoadError>> {
        let files = read_yaml_files(dir, true)?;
        Self::from_sources_with(files.iter().map(|(n, t)| (n.as_str(), t.as_str())), opts)
    }

    /// The repository's `rules/` pack, embedded at build time.
    ///
    /// # Errors
    /// Every bundled rule that cannot be loaded (the pack's own tests keep this empty).
    pub fn bundled() -> Result<RuleSet, Vec<LoadError>> {
        Self::from_sources(bundled::RULES.iter().copied())
    }

    /// Every detection rule, in load order.
    pub fn rules(&self) -> &[Rule] {
        &self.rules
    }

    /// Every correlation rule, in load order.
    pub fn correlations(&self) -> &[CorrelationRule] {
        &self.correlations
    }

    /// Non-fatal findings of the loader (placeholders without value, ignored fields, ...).
    pub fn warnings(&self) -> &[LoadError] {
        &self.warnings
    }

    /// The rule with this [`Rule::id`].
    pub fn rule(&self, id: &str) -> Option<&Rule> {
        self.rules.iter().find(|r| r.id == id)
    }

    /// Append every rule that matches `event` to `out` (each at most once, in load order).
    pub fn matches<'r, E: Event + ?Sized>(&'r self, event: &E, out: &mut Vec<&'r Rule>) {
        let mut name_buf = [0u8; 128];
        let mut source_buf = [0u8; 128];
        let by_name = lookup(&self.by_name, event.event_name(), &mut name_buf);
        let by_source = lookup(&self.by_source, event.event_source(), &mut source_buf);
        let start = out.len();
        let mut check = |list: &[usize]| {
            for &i in list {
                if let Some(rule) = self.rules.get(i) {
                    if rule_matches(rule, event) {
                        out.push(rule);
                    }
                }
            }
        };
        for list in [by_name, by_source, &self.always[..]] {
            check(list);
        }
        let mut value_buf = [0u8; 128];
        for g in &self.guards {
            let (mut seen, mut unsure) = (0usize, false);
            let mut valued: &[usize] = &[];
            event.any_value_at(&g.path, &mut |v| {
                seen += 1;
                match v.as_str() {
                    Some(s) if seen == 1 => {
                        valued = lookup(&g.by_value, Some(s), &mut value_buf);
                        false
                    }
                    // several values, or one that is not a string: every rule decides
                    _ => {
                        unsure = true;
                        true
                    }
                }
            });
            if seen == 0 {
                continue;
            }
            check(&g.present);
            check(if unsure { &g.valued } else { valued });
        }
        // keep load order whatever bucket a rule came from
        if let Some(found) = out.get_mut(start..) {
            found.sort_by_key(|r| std::ptr::from_ref::<Rule>(r) as usize);
        }
    }

    fn build_index(&mut self) {
        for (i, rule) in self.rules.iter().enumerate() {
            match index_keys(rule) {
                Some((IndexKey::Name, keys)) => keys.into_iter().for_each(|k| {
                    self.by_name
                        .entry(k.into_bytes().into())
                        .or_default()
                        .push(i)
                }),
                Some((IndexKey::Source, keys)) => keys.into_iter().for_each(|k| {
                    self.by_source
                        .entry(k.into_bytes().into())
                        .or_default()
                        .push(i)
                }),
                None => {
                    let Some((path, needs)) = guard_of(rule) else {
                        self.always.push(i);
                        continue;
                    };
                    let g = match self.guards.iter().position(|g| g.path == path) {
                        Some(at) => self.guards.get_mut(at),
                        None => {
                            self.guards.push(Guard {
                                path,
                                ..Guard::default()
                            });
                            self.guards.last_mut()
                        }
                    };
                    match (g, needs) {
                        (Some(g), Some(values)) => {
                            for v in values {
                                g.by_value.entry(v.into_bytes().into()).or_default().push(i);
                            }
                            g.valued.push(i);
                        }
                        (Some(g), None) => g.present.push(i),
                        (None, _) => self.always.push(i),
                    }
                }
            }
        }
    }

    /// How many rules every event is checked against (not indexed by name or source, and
    /// needing no value at a field a [`Guard`] reads first).
    pub fn unindexed_count(&self) -> usize {
        self.always.len()
    }
}

/// Rule indices by lowercase `eventName` or `eventSource`, keyed by the text's bytes (the
/// lowercased copy of a record's value is looked up as it is, without a UTF-8 check).
/// foldhash: the maps are built from the rules and hashed with a short name two to four times
/// per record; SipHash's resistance to chosen keys buys nothing here (records only look keys
/// up, never insert), and FNV-1a's multiply per byte took ~2 % of a scan.
type IndexMap = HashMap<Box<[u8]>, Vec<usize>, foldhash::fast::RandomState>;

/// The rules listed under `key` (ASCII-lowercased in `buf`, allocation-free when it fits).
fn lookup<'m>(map: &'m IndexMap, key: Option<&str>, buf: &mut [u8; 128]) -> &'m [usize] {
    let Some(key) = key else { return &[] };
    if map.is_empty() {
        return &[];
    }
    let found = match buf.get_mut(..key.len()) {
        Some(dst) if key.is_ascii() => {
            dst.copy_from_slice(key.as_bytes());
            dst.make_ascii_lowercase();
            map.get(&*dst)
        }
        _ => map.get(key.to_lowercase().as_bytes()),
    };
    found.map(Vec::as_slice).unwrap_or_default()
}

/// Resolve correlation references; mark base rules; reject duplicate ids.
fn resolve(rules: &mut [Rule], correlations: &mut [CorrelationRule], errors: &mut Vec<LoadError>) {
    let mut seen: HashMap<&str, (&str, usize)> = HashMap::new();
    for (id, file, line) in rules
        .iter()
        .map(|r| (r.id.as_str(), r.file.as_str(), r.line))
        .chain(
            correlations
                .iter()
                .map(|c| (c.id.as_str(), c.file.as_str(), c.line)),
        )
    {
        if let Some((other_file, other_line)) = seen.insert(id, (file, line)) {
            errors.push(LoadError {
                file: file.to_owned(),
                line: Some(line),
                message: format!("duplicate rule id `{id}` (also at {other_file}:{other_line})"),
            });
        }
    }
    // references may use a rule's `name`, its Sigma `id`, or (for derived rules) our id
    let mut by_ref: HashMap<String, String> = HashMap::new();
    for r in rules.iter() {
        by_ref.insert(r.id.clone(), r.id.clone());
        if let Some(s) = &r.sigma_id {
            by_ref.insert(s.clone(), r.id.clone());
        }
    }
    for c in correlations.iter() {
        by_ref.insert(c.id.clone(), c.id.clone());
        if let Some(s) = &c.sigma_id {
            by_ref.insert(s.clone(), c.id.clone());
        }
    }
    let mut feeds: HashMap<String, bool> = HashMap::new();
    for c in correlations.iter_mut() {
        if let Some(ratio) = c.ratio.as_mut() {
            for n in ratio.numerator.iter_mut() {
                let resolved = by_ref
                    .get(n.as_str())
                    .filter(|id| c.rules.iter().any(|r| by_ref.get(r.as_str()) == Some(*id)));
                match resolved {
                    Some(id) => *n = id.clone(),
                    None => errors.push(LoadError {
                        file: c.file.clone(),
                        line: Some(c.line),
                        message: format!(
                            "ratio numerator `{n}` of correlation `{}` is not one of its rules",
                            c.id
                        ),
                    }),
                }
            }
        }
        for r in c.rules.iter_mut() {
            match by_ref.get(r.as_str()) {
                Some(id) if *id == c.id => errors.push(LoadError {
                    file: c.file.clone(),
                    line: Some(c.line),
                    message: format!("correlation `{}` references itself", c.id),
                }),
                Some(id) => {
                    *r = id.clone();
                    let generate = feeds.entry(id.clone()).or_insert(false);
                    *generate |= c.generate;
                }
                None => errors.push(LoadError {
                    file: c.file.clone(),
                    line: Some(c.line),
                    message: format!("correlation `{}` references unknown rule `{r}`", c.id),
                }),
            }
        }
    }
    for r in rules.iter_mut() {
        if feeds.get(&r.id) == Some(&false) {
            r.correlation_only = true;
        }
    }
}

/// Read `*.yml`/`*.yaml` below `dir` (sorted); `skip_tests` leaves out `tests/` folders.
pub(crate) fn read_yaml_files(
    dir: &Path,
    skip_tests: bool,
) -> Result<Vec<(String, String)>, Vec<LoadError>> {
    let mut out = Vec::new();
    let mut errors = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let entries = match std::fs::read_dir(&d) {
            Ok(e) => e,
            Err(e) => {
                errors.push(LoadError {
                    file: d.display().to_string(),
                    line: None,
                    message: format!("cannot read directory: {e}"),
                });
                continue;
            }
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                if !(skip_tests && path.file_name().is_some_and(|n| n == "tests")) {
                    stack.push(path);
                }
            } else if path.extension().is_some_and(|e| e == "yml" || e == "yaml") {
                match std::fs::read_to_string(&path) {
                    Ok(text) => out.push((path.display().to_string(), text)),
                    Err(e) => errors.push(LoadError {
                        file: path.display().to_string(),
                        line: None,
                        message: format!("cannot read: {e}"),
                    }),
                }
            }
        }
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    out.sort();
    Ok(out)
}

// ---- evaluation ----

fn rule_matches<E: Event + ?Sized>(rule: &Rule, event: &E) -> bool {
    condition::eval(&rule.condition, &mut |i| {
        rule.detections
            .get(i)
            .is_some_and(|d| detection_matches(&d.body, event))
    })
}

fn detection_matches<E: Event + ?Sized>(body: &Body, event: &E) -> bool {
    match body {
        Body::Fields(tests) => tests.iter().all(|t| field_matches(t, event)),
        Body::AnyOf(branches) => branches
            .iter()
            .any(|b| b.iter().all(|t| field_matches(t, event))),
        Body::Keywords { all, values } => {
            let one = |v: &matcher::ValueMatch| {
                event.any_string_value(&mut |s| match v {
                    matcher::ValueMatch::Str(tests) => tests.iter().any(|t| t.is_match(s)),
                    _ => false,
                })
            };
            if *all {
                values.iter().all(one)
            } else {
                values.iter().any(one)
            }
        }
    }
}

/// One field test. Values are visited in place ([`Event::any_value_at`]), never collected:
/// reading a field for a rule allocates nothing.
fn field_matches<E: Event + ?Sized>(t: &FieldTest, event: &E) -> bool {
    match &t.kind {
        FieldKind::FieldRef { other, how, cased } => {
            // rare (`fieldref` modifier): collecting both sides is fine
            let (mut mine, mut theirs) = (Vec::new(), Vec::new());
            event.any_value_at(&t.path, &mut |v| {
                mine.push(v);
                false
            });
            event.any_value_at(other, &mut |v| {
                theirs.push(v);
                false
            });
            mine.iter()
                .any(|a| theirs.iter().any(|b| refs_match(*a, *b, *how, *cased)))
        }
        FieldKind::Never => false,
        FieldKind::Exists(want) => event.any_value_at(&t.path, &mut |v| !v.is_null()) == *want,
        FieldKind::Values { all: true, values } => values.iter().all(|m| match m {
            // null matches a missing field or a JSON null
            matcher::ValueMatch::Null => {
                let mut seen = false;
                let null = event.any_value_at(&t.path, &mut |v| {
                    seen = true;
                    v.is_null()
                });
                null || !seen
            }
            m => event.any_value_at(&t.path, &mut |v| m.is_match_ref(v)),
        }),
        FieldKind::Values { all: false, values } => {
            // one pass over the values: any matcher hitting any value, or a `null` matcher
            // with the field missing or null
            let wants_null = values
                .iter()
                .any(|m| matches!(m, matcher::ValueMatch::Null));
            let mut seen = false;
            let hit = event.any_value_at(&t.path, &mut |v| {
                seen = true;
                (wants_null && v.is_null())
                    || values
                        .iter()
                        .any(|m| !matches!(m, matcher::ValueMatch::Null) && m.is_match_ref(v))
            });
            hit || (wants_null && !seen)
        }
    }
}

fn refs_match(a: ValueRef<'_>, b: ValueRef<'_>, how: RefHow, cased: bool) -> bool {
    let (mut ba, mut bb) = ([0u8; 40], [0u8; 40]);
    let (Some(a), Some(b)) = (
        matcher::scalar_text(a, &mut ba),
        matcher::scalar_text(b, &mut bb),
    ) else {
        return false;
    };
    fn fold(s: &str, cased: bool) -> std::borrow::Cow<'_, str> {
        if cased {
            std::borrow::Cow::Borrowed(s)
        } else {
            std::borrow::Cow::Owned(s.to_lowercase())
        }
    }
    let (a, b) = (fold(a, cased), fold(b, cased));
    match how {
        RefHow::Equal => a == b,
        RefHow::Prefix => a.starts_with(&*b),
        RefHow::Suffix => a.ends_with(&*b),
        RefHow::Contains => a.contains(&*b),
    }
}

// ---- index ----

/// The lowercase values one of which the rule provably requires in `eventName` (preferred)
/// or `eventSource`; `None` when it must be evaluated for every event.
fn index_keys(rule: &Rule) -> Option<(IndexKey, Vec<String>)> {
    for (key, field) in [
        (IndexKey::Name, "eventName"),
        (IndexKey::Source, "eventSource"),
    ] {
        if let Some(set) = required(&rule.condition, &rule.detections, field) {
            let mut v: Vec<String> = set.into_iter().collect();
            v.sort();
            return Some((key, v));
        }
    }
    None
}

/// For a rule [`index_keys`] cannot index: a field its condition provably needs a value at,
/// with the lowercase values one of which it needs there (`None`: any value). Exact values
/// are preferred (the fewest; not on [`CATEGORIES`]), then presence of a field CloudTrail
/// does not always write ([`EVERY_RECORD`]).
fn guard_of(rule: &Rule) -> Option<(FieldPath, Option<Vec<String>>)> {
    let mut paths: Vec<&[Box<str>]> = Vec::new();
    for d in &rule.detections {
        let tests: Vec<&FieldTest> = match &d.body {
            Body::Fields(tests) => tests.iter().collect(),
            Body::AnyOf(branches) => branches.iter().flatten().collect(),
            Body::Keywords { .. } => Vec::new(),
        };
        for t in tests {
            if !paths.contains(&&*t.path) {
                paths.push(&t.path);
            }
        }
    }
    let valued = paths
        .iter()
        .filter(|p| !matches!(p, [top] if CATEGORIES.contains(&&**top)))
        .filter_map(|p| Some((*p, required_at(&rule.condition, &rule.detections, p)?)))
        .min_by_key(|(_, set)| set.len());
    if let Some((path, set)) = valued {
        let mut v: Vec<String> = set.into_iter().collect();
        v.sort();
        return Some((path.into(), Some(v)));
    }
    paths
        .into_iter()
        .filter(|p| !matches!(p, [top, ..] if EVERY_RECORD.contains(&&**top)))
        .find(|p| needs_value(&rule.condition, &rule.detections, p))
        .map(|p| (p.into(), None))
}

/// Whether `cond` can hold only when the event has a value at `path` (null included).
fn needs_value(cond: &Cond, dets: &[Detection], path: &[Box<str>]) -> bool {
    let det = |i: &usize| dets.get(*i).is_some_and(|d| det_needs_value(&d.body, path));
    match cond {
        Cond::Det(i) => det(i),
        Cond::And(parts) => parts.iter().any(|c| needs_value(c, dets, path)),
        Cond::Or(parts) => !parts.is_empty() && parts.iter().all(|c| needs_value(c, dets, path)),
        Cond::Not(_) => false,
        Cond::AtLeast(n, ids) => *n >= 1 && !ids.is_empty() && ids.iter().all(det),
        Cond::All(ids) => ids.iter().any(det),
    }
}

fn det_needs_value(body: &Body, path: &[Box<str>]) -> bool {
    // a test of non-null values (or `exists: true`) fails on a field without any value
    let fields = |tests: &[FieldTest]| {
        tests.iter().any(|t| {
            &*t.path == path
                && match &t.kind {
                    FieldKind::Values { values, .. } => {
                        !values.is_empty()
                            && !values
                                .iter()
                                .any(|m| matches!(m, matcher::ValueMatch::Null))
                    }
                    FieldKind::Exists(want) => *want,
                    FieldKind::Never => true,
                    FieldKind::FieldRef { .. } => false,
                }
        })
    };
    match body {
        Body::Fields(tests) => fields(tests),
        Body::AnyOf(branches) => !branches.is_empty() && branches.iter().all(|b| fields(b)),
        Body::Keywords { .. } => false,
    }
}

fn required(cond: &Cond, dets: &[Detection], field: &str) -> Option<HashSet<String>> {
    required_at(cond, dets, &[field.into()])
}

fn required_at(cond: &Cond, dets: &[Detection], field: &[Box<str>]) -> Option<HashSet<String>> {
    let det = |i: &usize| dets.get(*i).and_then(|d| det_required(&d.body, field));
    let union = |sets: Vec<Option<HashSet<String>>>| -> Option<HashSet<String>> {
        let mut all = HashSet::new();
        for s in sets {
            all.extend(s?);
        }
        Some(all)
    };
    let smallest =
        |sets: Vec<Option<HashSet<String>>>| sets.into_iter().flatten().min_by_key(HashSet::len);
    match cond {
        Cond::Det(i) => det(i),
        Cond::And(parts) => smallest(parts.iter().map(|c| required_at(c, dets, field)).collect()),
        Cond::Or(parts) => union(parts.iter().map(|c| required_at(c, dets, field)).collect()),
        Cond::Not(_) => None,
        Cond::AtLeast(_, ids) => union(ids.iter().map(det).collect()),
        Cond::All(ids) => smallest(ids.iter().map(det).collect()),
    }
}

fn det_required(body: &Body, field: &[Box<str>]) -> Option<HashSet<String>> {
    let fields = |tests: &[FieldTest]| -> Option<HashSet<String>> {
        tests
            .iter()
            .filter(|t| &*t.path == field)
            .filter_map(|t| match &t.kind {
                // `all` of no values holds for any event
                FieldKind::Values { values, .. } if values.is_empty() => None,
                FieldKind::Values { values, .. } => values
                    .iter()
                    .map(|v| v.exact_needle().map(str::to_lowercase))
                    .collect::<Option<HashSet<String>>>(),
                // a placeholder without value never matches: no event needs to see it
                FieldKind::Never => Some(HashSet::new()),
                _ => None,
            })
            .min_by_key(HashSet::len)
    };
    match body {
        Body::Fields(tests) => fields(tests),
        Body::AnyOf(branches) => {
            let mut all = HashSet::new();
            for b in branches {
                all.extend(fields(b)?);
            }
            Some(all)
        }
        Body::Keywords { .. } => None,
    }
}

#[cfg(test)]
mod tests;

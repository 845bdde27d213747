//! Rule documents (YAML trees with lines) to compiled [`Rule`]s and [`CorrelationRule`]s.
//!
//! Every refusal names the line of the offending node. Nothing here looks at events.

use super::condition::{self, Cond};
use super::matcher::{self, NumOp, Piece, StrMatch, StrTest, ValueMatch};
use super::yaml::{Kind, Node, Scalar};
use super::{
    CmpOp, CorrelationCondition, CorrelationRatio, CorrelationRule, CorrelationType,
    FailedAttempts, FieldAlias, LoadError, Rule,
};
use crate::findings::Severity;
use base64::Engine as _;
use std::collections::HashMap;
use std::time::Duration;

/// One detection (a named selection or keyword list).
#[derive(Debug, Clone)]
pub(crate) struct Detection {
    pub name: String,
    pub body: Body,
}

/// What a detection tests.
#[derive(Debug, Clone)]
pub(crate) enum Body {
    /// A map: every field test holds.
    Fields(Vec<FieldTest>),
    /// A list of maps: any of them holds.
    AnyOf(Vec<Vec<FieldTest>>),
    /// An unnamed value list searched in every string of the event (`all` = every value).
    Keywords { all: bool, values: Vec<ValueMatch> },
}

/// One `field|modifiers: values` entry.
#[derive(Debug, Clone)]
pub(crate) struct FieldTest {
    pub path: Box<[Box<str>]>,
    pub kind: FieldKind,
}

/// How a field is tested.
#[derive(Debug, Clone)]
pub(crate) enum FieldKind {
    /// Any (or, with `all`, every) expected value is matched by some value of the field.
    Values { all: bool, values: Vec<ValueMatch> },
    /// `exists: true|false`: the field has a non-null value.
    Exists(bool),
    /// `fieldref`: the field equals (or contains, starts or ends with) another field's value.
    FieldRef {
        other: Box<[Box<str>]>,
        how: RefHow,
        cased: bool,
    },
    /// A placeholder without a value: never matches (the loader warned).
    Never,
}

/// String relation used by `fieldref`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RefHow {
    Equal,
    Prefix,
    Suffix,
    Contains,
}

/// Options the loader passes down.
pub(crate) struct Ctx<'a> {
    pub file: &'a str,
    pub placeholders: &'a HashMap<String, Vec<String>>,
    pub warnings: &'a mut Vec<LoadError>,
}

impl Ctx<'_> {
    fn err(&self, line: usize, message: impl Into<String>) -> LoadError {
        LoadError {
            file: self.file.to_owned(),
            line: Some(line),
            message: message.into(),
        }
    }

    fn warn(&mut self, line: usize, message: impl Into<String>) {
        let w = LoadError {
            file: self.file.to_owned(),
            line: Some(line),
            message: message.into(),
        };
        self.warnings.push(w);
    }
}

/// A compiled document: a detection rule (plus, for legacy `| count()` / `| near`
/// conditions, the correlation built from it) or a correlation rule.
pub(crate) struct Compiled {
    pub rules: Vec<Rule>,
    pub correlations: Vec<CorrelationRule>,
}

const KNOWN_META: &[&str] = &[
    "title",
    "id",
    "name",
    "status",
    "description",
    "references",
    "author",
    "date",
    "modified",
    "tags",
    "logsource",
    "detection",
    "falsepositives",
    "level",
    "fields",
    "failed_attempts",
    "related",
    "license",
    "taxonomy",
    "scope",
    "correlation",
    "generate",
    "trailwatch",
];

/// Compile one YAML document of `ctx.file`.
pub(crate) fn compile_document(doc: &Node, ctx: &mut Ctx<'_>) -> Result<Compiled, Vec<LoadError>> {
    let Kind::Map(entries) = &doc.kind else {
        return Err(vec![ctx.err(
            doc.line,
            format!("a rule must be a YAML map, found {}", doc.shape()),
        )]);
    };
    if let Some(action) = doc.get("action") {
        return Err(vec![ctx.err(
            action.line,
            "Sigma collections (`action: global|reset|repeat`) are not supported; write one self-contained rule per document",
        )]);
    }
    for (key, line, _) in entries {
        if !KNOWN_META.contains(&key.as_str()) && !key.starts_with("x-") && !key.starts_with('_') {
            ctx.warn(*line, format!("unknown top-level field `{key}` is ignored"));
        }
    }
    let meta = Meta::parse(doc, ctx).map_err(|e| vec![e])?;
    match (doc.get("correlation"), doc.get("detection")) {
        (Some(_), Some(d)) => Err(vec![ctx.err(
            d.line,
            "a document has either `correlation` or `detection`, not both",
        )]),
        (Some(c), None) => {
            let corr = compile_correlation(&meta, c, doc, ctx).map_err(|e| vec![e])?;
            Ok(Compiled {
                rules: Vec::new(),
                correlations: vec![corr],
            })
        }
        (None, Some(d)) => compile_rule(meta, doc, d, ctx),
        (None, None) => Err(vec![ctx.err(
            doc.line,
            "rule has no `detection` (or `correlation`) section",
        )]),
    }
}

/// Metadata shared by detection and correlation rules.
#[derive(Clone)]
struct Meta {
    id: String,
    sigma_id: Option<String>,
    name: Option<String>,
    title: String,
    description: String,
    status: Option<String>,
    author: Option<String>,
    level: Severity,
    tags: Vec<String>,
    falsepositives: Vec<String>,
    references: Vec<String>,
    fields: Vec<String>,
    failed_attempts: FailedAttempts,
    line: usize,
}

fn text_field(doc: &Node, key: &str, ctx: &Ctx<'_>) -> Result<Option<String>, LoadError> {
    match doc.get(key) {
        None => Ok(None),
        Some(Node {
            kind: Kind::Scalar(Scalar::Null),
            ..
        }) => Ok(None),
        Some(n) => n
            .as_text()
            .map(|s| Some(s.to_owned()))
            .ok_or_else(|| ctx.err(n.line, format!("`{key}` must be text, found {}", n.shape()))),
    }
}

fn list_field(doc: &Node, key: &str, ctx: &Ctx<'_>) -> Result<Vec<String>, LoadError> {
    match doc.get(key) {
        None => Ok(Vec::new()),
        Some(n) => match &n.kind {
            Kind::Scalar(Scalar::Null) => Ok(Vec::new()),
            Kind::Scalar(s) => Ok(s.as_text().map(|t| vec![t.to_owned()]).unwrap_or_default()),
            Kind::Seq(items) => items
                .iter()
                .map(|i| {
                    i.as_text().map(str::to_owned).ok_or_else(|| {
                        ctx.err(
                            i.line,
                            format!("`{key}` entries must be text, found {}", i.shape()),
                        )
                    })
                })
                .collect(),
            Kind::Map(_) => Err(ctx.err(n.line, format!("`{key}` must be a list, found a map"))),
        },
    }
}

impl Meta {
    fn parse(doc: &Node, ctx: &Ctx<'_>) -> Result<Meta, LoadError> {
        let title = text_field(doc, "title", ctx)?
            .ok_or_else(|| ctx.err(doc.line, "rule has no `title`"))?;
        let sigma_id = text_field(doc, "id", ctx)?;
        let name = text_field(doc, "name", ctx)?;
        let id = name
            .clone()
            .or_else(|| sigma_id.clone())
            .ok_or_else(|| ctx.err(doc.line, "rule has neither `name` nor `id`"))?;
        let level = match doc.get("level") {
            None => Severity::Medium,
            Some(n) => {
                let text = n
                    .as_text()
                    .ok_or_else(|| ctx.err(n.line, "`level` must be text"))?;
                text.parse::<Severity>()
                    .map_err(|e| ctx.err(n.line, e.to_string()))?
            }
        };
        let failed_attempts = match doc.get("failed_attempts") {
            None => FailedAttempts::Lower,
            Some(n) => match n.as_text() {
                Some("lower") => FailedAttempts::Lower,
                Some("keep") => FailedAttempts::Keep,
                _ => return Err(ctx.err(n.line, "`failed_attempts` must be `lower` or `keep`")),
            },
        };
        Ok(Meta {
            id,
            sigma_id,
            name,
            title,
            description: text_field(doc, "description", ctx)?.unwrap_or_default(),
            status: text_field(doc, "status", ctx)?,
            author: text_field(doc, "author", ctx)?,
            level,
            tags: list_field(doc, "tags", ctx)?,
            falsepositives: list_field(doc, "falsepositives", ctx)?,
            references: list_field(doc, "references", ctx)?,
            fields: list_field(doc, "fields", ctx)?,
            failed_attempts,
            line: doc.line,
        })
    }

    fn into_rule(
        self,
        file: &str,
        detections: Vec<Detection>,
        cond: Cond,
        correlation_only: bool,
    ) -> Rule {
        Rule {
            id: self.id,
            sigma_id: self.sigma_id,
            name: self.name,
            title: self.title,
            description: self.description,
            status: self.status,
            author: self.author,
            level: self.level,
            tags: self.tags,
            falsepositives: self.falsepositives,
            references: self.references,
            fields: self.fields,
            failed_attempts: self.failed_attempts,
            file: file.to_owned(),
            line: self.line,
            correlation_only,
            detections,
            condition: cond,
        }
    }
}

fn check_logsource(doc: &Node, ctx: &Ctx<'_>) -> Result<(), LoadError> {
    let ls = doc
        .get("logsource")
        .ok_or_else(|| ctx.err(doc.line, "rule has no `logsource`"))?;
    let product = ls.get("product").and_then(Node::as_text);
    let service = ls.get("service").and_then(Node::as_text);
    let category = ls.get("category").and_then(Node::as_text);
    if product.map(str::to_ascii_lowercase).as_deref() != Some("aws")
        || service.map(str::to_ascii_lowercase).as_deref() != Some("cloudtrail")
        || category.is_some()
    {
        return Err(ctx.err(
            ls.line,
            format!(
                "unsupported logsource (product: {}, service: {}{}): this engine only evaluates `product: aws, service: cloudtrail`",
                product.unwrap_or("-"),
                service.unwrap_or("-"),
                category.map(|c| format!(", category: {c}")).unwrap_or_default()
            ),
        ));
    }
    Ok(())
}

fn compile_rule(
    meta: Meta,
    doc: &Node,
    det: &Node,
    ctx: &mut Ctx<'_>,
) -> Result<Compiled, Vec<LoadError>> {
    check_logsource(doc, ctx).map_err(|e| vec![e])?;
    let Kind::Map(entries) = &det.kind else {
        return Err(vec![ctx.err(
            det.line,
            format!("`detection` must be a map, found {}", det.shape()),
        )]);
    };
    let mut errors = Vec::new();
    let mut detections = Vec::new();
    let mut conditions: Vec<(String, usize)> = Vec::new();
    let mut timeframe: Option<(Duration, usize)> = None;
    for (key, key_line, node) in entries {
        match key.as_str() {
            "condition" => match &node.kind {
                Kind::Seq(items) => {
                    for i in items {
                        match i.as_text() {
                            Some(t) => conditions.push((t.to_owned(), i.line)),
                            None => errors.push(ctx.err(i.line, "conditions must be text")),
                        }
                    }
                }
                _ => match node.as_text() {
                    Some(t) => conditions.push((t.to_owned(), node.line)),
                    None => errors
                        .push(ctx.err(node.line, "`condition` must be text or a list of text")),
                },
            },
            "timeframe" => match node.as_text().map(parse_timespan) {
                Some(Ok(d)) => timeframe = Some((d, node.line)),
                Some(Err(e)) => errors.push(ctx.err(node.line, e)),
                None => {
                    errors.push(ctx.err(node.line, "`timeframe` must be a duration such as 10m"))
                }
            },
            _ => match compile_detection(key, *key_line, node, ctx) {
                Ok(body) => detections.push(Detection {
                    name: key.clone(),
                    body,
                }),
                Err(e) => errors.push(e),
            },
        }
    }
    if conditions.is_empty() {
        errors.push(ctx.err(det.line, "`detection` has no `condition`"));
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    let names: Vec<String> = detections.iter().map(|d| d.name.clone()).collect();
    let file = ctx.file;

    // legacy Sigma 1 aggregations (`sel | count() by x > 5`, `a | near b`) become a base rule
    // plus a correlation rule, so they load and the stateful evaluator can run them
    if let [(text, line)] = conditions.as_slice() {
        if let Some((base, agg)) = text.split_once('|') {
            return legacy_aggregation(meta, detections, &names, base, agg, *line, timeframe, ctx)
                .map_err(|e| vec![e]);
        }
    }
    let mut parts = Vec::new();
    for (text, line) in &conditions {
        if text.contains('|') {
            return Err(vec![ctx.err(
                *line,
                "aggregations (`| count()`) are only supported in a single condition",
            )]);
        }
        parts.push(condition::parse(text, &names).map_err(|e| vec![ctx.err(*line, e)])?);
    }
    if let Some((_, line)) = timeframe {
        ctx.warn(
            line,
            "`timeframe` has no effect without an aggregation (`| count()`) or correlation",
        );
    }
    let cond = if parts.len() == 1 {
        parts.remove(0)
    } else {
        Cond::Or(parts)
    };
    Ok(Compiled {
        rules: vec![meta.into_rule(file, detections, cond, false)],
        correlations: Vec::new(),
    })
}

#[allow(clippy::too_many_arguments)]
fn legacy_aggregation(
    meta: Meta,
    detections: Vec<Detection>,
    names: &[String],
    base: &str,
    agg: &str,
    line: usize,
    timeframe: Option<(Duration, usize)>,
    ctx: &mut Ctx<'_>,
) -> Result<Compiled, LoadError> {
    let base_cond = condition::parse(base, names).map_err(|e| ctx.err(line, e))?;
    let agg = agg.trim();
    let timespan = match timeframe {
        Some((d, _)) => d,
        None => {
            ctx.warn(
                line,
                "aggregation without `timeframe`: the correlation window defaults to 1h",
            );
            Duration::from_secs(3600)
        }
    };
    let base_id = format!("{}/base", meta.id);
    let file = ctx.file;
    let mut base_meta = meta.clone();
    base_meta.id = base_id.clone();
    base_meta.sigma_id = None;
    base_meta.name = None;
    let mut rules = Vec::new();
    let (kind, rule_ids, group_by, cond) = if let Some(rest) = agg.strip_prefix("near ") {
        // `a | near b and c`: every operand must occur within the window
        let mut ids = vec![base_id.clone()];
        for operand in rest.split(" and ") {
            let operand = operand.trim();
            let c = condition::parse(operand, names).map_err(|e| ctx.err(line, e))?;
            let mut m = meta.clone();
            m.id = format!("{}/{}", meta.id, operand.replace(' ', "_"));
            m.sigma_id = None;
            m.name = None;
            ids.push(m.id.clone());
            rules.push(m.into_rule(file, detections.clone(), c, true));
        }
        (CorrelationType::Temporal, ids, Vec::new(), None)
    } else {
        let (kind, field, group_by, op, value) = parse_count(agg).map_err(|e| ctx.err(line, e))?;
        let cond = CorrelationCondition {
            field,
            ops: vec![(op, value)],
        };
        (kind, vec![base_id.clone()], group_by, Some(cond))
    };
    rules.insert(0, base_meta.into_rule(file, detections, base_cond, true));
    let corr = CorrelationRule {
        id: meta.id,
        sigma_id: meta.sigma_id,
        title: meta.title,
        description: meta.description,
        level: meta.level,
        tags: meta.tags,
        falsepositives: meta.falsepositives,
        kind,
        rules: rule_ids,
        group_by,
        timespan,
        condition: cond,
        aliases: Vec::new(),
        generate: false,
        ratio: None,
        file: file.to_owned(),
        line: meta.line,
    };
    Ok(Compiled {
        rules,
        correlations: vec![corr],
    })
}

type CountSpec = (CorrelationType, Option<String>, Vec<String>, CmpOp, u64);

/// `count() > 5`, `count(field) by group > 5`, `count() by a, b >= 10`.
fn parse_count(agg: &str) -> Result<CountSpec, String> {
    let bad = || {
        format!("unsupported aggregation `{agg}` (expected `count([field]) [by field] <op> <number>` or `near <detection>`)")
    };
    let rest = agg.strip_prefix("count(").ok_or_else(bad)?;
    let (field, rest) = rest.split_once(')').ok_or_else(bad)?;
    let field = field.trim();
    let mut rest = rest.trim();
    let mut group_by = Vec::new();
    if let Some(by) = rest.strip_prefix("by ") {
        let end = by.find(['>', '<', '=']).ok_or_else(bad)?;
        group_by = by
            .get(..end)
            .unwrap_or_default()
            .split(',')
            .map(|s| s.trim().to_owned())
            .collect();
        if group_by.iter().any(String::is_empty) {
            return Err(bad());
        }
        rest = by.get(end..).unwrap_or_default();
    }
    let (op, num) = if let Some(n) = rest.strip_prefix(">=") {
        (CmpOp::Gte, n)
    } else if let Some(n) = rest.strip_prefix("<=") {
        (CmpOp::Lte, n)
    } else if let Some(n) = rest.strip_prefix('>') {
        (CmpOp::Gt, n)
    } else if let Some(n) = rest.strip_prefix('<') {
        (CmpOp::Lt, n)
    } else if let Some(n) = rest.strip_prefix("==").or_else(|| rest.strip_prefix('=')) {
        (CmpOp::Eq, n)
    } else {
        return Err(bad());
    };
    let value = num.trim().parse::<u64>().map_err(|_| bad())?;
    let (kind, field) = if field.is_empty() {
        (CorrelationType::EventCount, None)
    } else {
        (CorrelationType::ValueCount, Some(field.to_owned()))
    };
    Ok((kind, field, group_by, op, value))
}

/// Sigma timespans: `30s`, `10m`, `1h`, `2d`, `1w`.
pub(crate) fn parse_timespan(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let bad = || format!("invalid timespan `{s}` (expected a number followed by s, m, h, d or w)");
    let unit_at = s.find(|c: char| !c.is_ascii_digit()).ok_or_else(bad)?;
    let (num, unit) = s.split_at(unit_at);
    let n: u64 = num.parse().map_err(|_| bad())?;
    let secs = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        "w" => 604_800,
        _ => return Err(bad()),
    };
    if n == 0 {
        return Err(bad());
    }
    n.checked_mul(secs).map(Duration::from_secs).ok_or_else(bad)
}

fn compile_detection(
    name: &str,
    line: usize,
    node: &Node,
    ctx: &mut Ctx<'_>,
) -> Result<Body, LoadError> {
    match &node.kind {
        Kind::Map(entries) => Ok(Body::Fields(compile_fields(entries, ctx)?)),
        Kind::Seq(items)
            if items.iter().all(|i| matches!(i.kind, Kind::Map(_))) && !items.is_empty() =>
        {
            let mut branches = Vec::new();
            for i in items {
                if let Kind::Map(entries) = &i.kind {
                    branches.push(compile_fields(entries, ctx)?);
                }
            }
            Ok(Body::AnyOf(branches))
        }
        Kind::Seq(items)
            if items.iter().all(|i| matches!(i.kind, Kind::Scalar(_))) && !items.is_empty() =>
        {
            let mut values = Vec::new();
            for i in items {
                if let Kind::Scalar(s) = &i.kind {
                    values.extend(compile_value(s, &keyword_mods(), i.line, ctx)?);
                }
            }
            Ok(Body::Keywords { all: false, values })
        }
        _ => Err(ctx.err(
            line,
            format!(
                "detection `{name}` must be a map, a list of maps or a list of keywords, found {}",
                node.shape()
            ),
        )),
    }
}

/// Keywords are full-text searches: a keyword matches a string that contains it.
fn keyword_mods() -> Mods {
    Mods {
        contains: true,
        ..Mods::default()
    }
}

/// Parsed modifiers of one field key.
#[derive(Default, Debug)]
struct Mods {
    contains: bool,
    startswith: bool,
    endswith: bool,
    all: bool,
    re: bool,
    re_i: bool,
    re_m: bool,
    re_s: bool,
    cidr: bool,
    exists: bool,
    cased: bool,
    fieldref: bool,
    expand: bool,
    base64: bool,
    base64offset: bool,
    num: Option<NumOp>,
}

fn parse_mods(mods: &[&str]) -> Result<Mods, String> {
    let mut m = Mods::default();
    for raw in mods {
        match raw.to_ascii_lowercase().as_str() {
            "contains" => m.contains = true,
            "startswith" => m.startswith = true,
            "endswith" => m.endswith = true,
            "all" => m.all = true,
            "re" => m.re = true,
            "i" => m.re_i = true,
            "m" => m.re_m = true,
            "s" => m.re_s = true,
            "cidr" => m.cidr = true,
            "exists" => m.exists = true,
            "cased" => m.cased = true,
            "fieldref" => m.fieldref = true,
            "expand" => m.expand = true,
            "base64" => m.base64 = true,
            "base64offset" => m.base64offset = true,
            "gt" => m.num = Some(NumOp::Gt),
            "gte" => m.num = Some(NumOp::Gte),
            "lt" => m.num = Some(NumOp::Lt),
            "lte" => m.num = Some(NumOp::Lte),
            "windash" | "utf16" | "utf16le" | "utf16be" | "wide" => {
                return Err(format!(
                    "modifier `{raw}` is for Windows logs and is not supported for CloudTrail"
                ))
            }
            _ => return Err(format!("unknown modifier `{raw}`")),
        }
    }
    let string_mods = usize::from(m.contains) + usize::from(m.startswith) + usize::from(m.endswith);
    if string_mods > 1 {
        return Err("use only one of `contains`, `startswith`, `endswith`".into());
    }
    if (m.re_i || m.re_m || m.re_s) && !m.re {
        return Err("`i`, `m` and `s` only apply to `re`".into());
    }
    let kinds = usize::from(m.re)
        + usize::from(m.cidr)
        + usize::from(m.exists)
        + usize::from(m.fieldref)
        + usize::from(m.num.is_some())
        + usize::from(m.base64 || m.base64offset);
    if kinds > 1 {
        return Err("`re`, `cidr`, `exists`, `fieldref`, `gt`/`gte`/`lt`/`lte` and `base64` cannot be combined".into());
    }
    if string_mods > 0 && (m.re || m.cidr || m.exists || m.num.is_some()) {
        return Err("`contains`/`startswith`/`endswith` cannot be combined with `re`, `cidr`, `exists` or numeric comparisons".into());
    }
    if m.base64offset && !m.contains {
        return Err("`base64offset` must be followed by `contains`".into());
    }
    if m.base64 && m.base64offset {
        return Err("use either `base64` or `base64offset`".into());
    }
    Ok(m)
}

fn compile_fields(
    entries: &[(String, usize, Node)],
    ctx: &mut Ctx<'_>,
) -> Result<Vec<FieldTest>, LoadError> {
    let mut tests = Vec::with_capacity(entries.len());
    for (key, line, node) in entries {
        let mut parts = key.split('|');
        let field = parts.next().unwrap_or_default().trim();
        let mods: Vec<&str> = parts.collect();
        if field.is_empty() {
            return Err(ctx.err(
                *line,
                format!("`{key}`: keyword searches with modifiers are not supported; name a field"),
            ));
        }
        if field.split('.').any(str::is_empty) {
            return Err(ctx.err(*line, format!("`{field}` is not a valid dotted field path")));
        }
        let m = parse_mods(&mods).map_err(|e| ctx.err(*line, format!("`{key}`: {e}")))?;
        let path: Box<[Box<str>]> = field.split('.').map(Box::from).collect();
        let values: Vec<(&Scalar, usize)> = match &node.kind {
            Kind::Scalar(s) => vec![(s, node.line)],
            Kind::Seq(items) if !items.is_empty() => {
                let mut v = Vec::new();
                for i in items {
                    match &i.kind {
                        Kind::Scalar(s) => v.push((s, i.line)),
                        _ => {
                            return Err(ctx.err(
                                i.line,
                                format!("`{key}`: values must be scalars, found {}", i.shape()),
                            ))
                        }
                    }
                }
                v
            }
            Kind::Seq(_) => return Err(ctx.err(node.line, format!("`{key}`: empty value list"))),
            Kind::Map(_) => {
                return Err(ctx.err(
                    node.line,
                    format!("`{key}`: values must be scalars, found a map"),
                ))
            }
        };
        let kind = if m.exists {
            match values.as_slice() {
                [(Scalar::Bool(b), _)] => FieldKind::Exists(*b),
                _ => {
                    return Err(ctx.err(*line, format!("`{key}`: `exists` takes `true` or `false`")))
                }
            }
        } else if m.fieldref {
            let [(s, l)] = values.as_slice() else {
                return Err(ctx.err(*line, format!("`{key}`: `fieldref` takes one field name")));
            };
            let other = s
                .as_text()
                .filter(|t| !t.is_empty())
                .ok_or_else(|| ctx.err(*l, "`fieldref` needs a field name"))?;
            let how = match (m.contains, m.startswith, m.endswith) {
                (true, _, _) => RefHow::Contains,
                (_, true, _) => RefHow::Prefix,
                (_, _, true) => RefHow::Suffix,
                _ => RefHow::Equal,
            };
            FieldKind::FieldRef {
                other: other.split('.').map(Box::from).collect(),
                how,
                cased: m.cased,
            }
        } else {
            let mut compiled = Vec::new();
            let mut never = false;
            for (s, l) in values {
                if m.expand {
                    match expand(s, *line, l, ctx)? {
                        Some(list) => {
                            for v in list {
                                compiled.extend(compile_value(&Scalar::Str(v), &m, l, ctx)?);
                            }
                        }
                        None => never = true,
                    }
                } else {
                    compiled.extend(compile_value(s, &m, l, ctx)?);
                }
            }
            if never && (compiled.is_empty() || m.all) {
                FieldKind::Never
            } else {
                if !m.all {
                    compiled = matcher::merge_contains(compiled).map_err(|e| ctx.err(*line, e))?;
                }
                FieldKind::Values {
                    all: m.all,
                    values: compiled,
                }
            }
        };
        tests.push(FieldTest { path, kind });
    }
    Ok(tests)
}

/// `%name%` through the placeholder map; `None` (with a warning) when it has no value.
fn expand(
    s: &Scalar,
    key_line: usize,
    line: usize,
    ctx: &mut Ctx<'_>,
) -> Result<Option<Vec<String>>, LoadError> {
    let text = s.as_text().unwrap_or_default();
    let Some(name) = text
        .strip_prefix('%')
        .and_then(|t| t.strip_suffix('%'))
        .filter(|n| !n.is_empty())
    else {
        return Err(ctx.err(
            line,
            format!("`expand` needs a `%placeholder%` value, found `{text}`"),
        ));
    };
    match ctx.placeholders.get(name) {
        Some(values) if !values.is_empty() => Ok(Some(values.clone())),
        _ => {
            ctx.warn(
                key_line,
                format!("placeholder `%{name}%` has no value: this selection never matches"),
            );
            Ok(None)
        }
    }
}

fn compile_value(
    s: &Scalar,
    m: &Mods,
    line: usize,
    ctx: &Ctx<'_>,
) -> Result<Vec<ValueMatch>, LoadError> {
    let text = match s {
        Scalar::Null => {
            if m.re
                || m.cidr
                || m.num.is_some()
                || m.contains
                || m.startswith
                || m.endswith
                || m.base64
                || m.base64offset
            {
                return Err(ctx.err(line, "`null` cannot be combined with modifiers"));
            }
            return Ok(vec![ValueMatch::Null]);
        }
        other => other.as_text().unwrap_or_default(),
    };
    if let Some(op) = m.num {
        let n = text
            .trim()
            .parse::<f64>()
            .map_err(|_| ctx.err(line, format!("`{text}` is not a number")))?;
        return Ok(vec![ValueMatch::Num(op, n)]);
    }
    if m.cidr {
        return Ok(vec![ValueMatch::Cidr(
            matcher::parse_cidr(text).map_err(|e| ctx.err(line, e))?,
        )]);
    }
    if m.re {
        let re =
            matcher::build_regex(text, m.re_i, m.re_m, m.re_s).map_err(|e| ctx.err(line, e))?;
        return Ok(vec![ValueMatch::Str(vec![StrMatch {
            test: StrTest::Regex(re),
            cased: true,
        }])]);
    }
    let variants: Vec<Vec<Piece>> = if m.base64 {
        vec![matcher::literal_pieces(
            &base64::engine::general_purpose::STANDARD.encode(text),
        )]
    } else if m.base64offset {
        base64_offsets(text)
            .iter()
            .map(|v| matcher::literal_pieces(v))
            .collect()
    } else {
        vec![matcher::pieces(text)]
    };
    let mut tests = Vec::new();
    for mut pieces in variants {
        if m.contains || m.endswith {
            pieces.insert(0, Piece::Star);
        }
        if m.contains || m.startswith {
            pieces.push(Piece::Star);
        }
        // base64 output is case-sensitive by nature
        let cased = m.cased || m.base64 || m.base64offset;
        tests.push(matcher::compile_pieces(&pieces, cased).map_err(|e| ctx.err(line, e))?);
    }
    Ok(vec![ValueMatch::Str(tests)])
}

/// The three base64 renderings of `text` preceded by 0, 1 or 2 unknown bytes, trimmed to the
/// characters that do not depend on the neighbouring bytes (Sigma `base64offset`).
fn base64_offsets(text: &str) -> Vec<String> {
    let engine = &base64::engine::general_purpose::STANDARD;
    // characters to drop at the start (they encode the unknown prefix) and at the end
    // (they depend on the unknown suffix), by offset and by (offset + len) % 3
    const START: [usize; 3] = [0, 2, 3];
    const END: [usize; 3] = [0, 3, 2];
    (0..3usize)
        .map(|i| {
            let mut bytes = vec![b' '; i];
            bytes.extend_from_slice(text.as_bytes());
            let enc = engine.encode(&bytes);
            let from = START.get(i).copied().unwrap_or(0);
            let cut = END.get((i + text.len()) % 3).copied().unwrap_or(0);
            enc.get(from..enc.len().saturating_sub(cut))
                .unwrap_or_default()
                .to_owned()
        })
        .collect()
}

fn compile_correlation(
    meta: &Meta,
    c: &Node,
    doc: &Node,
    ctx: &mut Ctx<'_>,
) -> Result<CorrelationRule, LoadError> {
    let kind = match c.get("type").and_then(Node::as_text) {
        Some("event_count") => CorrelationType::EventCount,
        Some("value_count") => CorrelationType::ValueCount,
        Some("temporal") => CorrelationType::Temporal,
        Some("temporal_ordered") => CorrelationType::TemporalOrdered,
        Some(other) => {
            return Err(ctx.err(
                c.line,
                format!("unsupported correlation type `{other}` (expected event_count, value_count, temporal or temporal_ordered)"),
            ))
        }
        None => return Err(ctx.err(c.line, "correlation has no `type`")),
    };
    let rules = list_field(c, "rules", ctx)?;
    if rules.is_empty() {
        return Err(ctx.err(c.line, "correlation has no `rules`"));
    }
    let group_by = list_field(c, "group-by", ctx)?;
    let ts = c.get("timespan").or_else(|| c.get("timeframe"));
    let timespan = match ts {
        Some(n) => {
            parse_timespan(n.as_text().unwrap_or_default()).map_err(|e| ctx.err(n.line, e))?
        }
        None => return Err(ctx.err(c.line, "correlation has no `timespan`")),
    };
    let condition = match c.get("condition") {
        None => None,
        Some(n) => Some(parse_corr_condition(n, ctx)?),
    };
    match (kind, &condition) {
        (CorrelationType::EventCount | CorrelationType::ValueCount, None) => {
            return Err(ctx.err(
                c.line,
                "event_count and value_count correlations need a `condition`",
            ))
        }
        (CorrelationType::ValueCount, Some(cc)) if cc.field.is_none() => {
            return Err(ctx.err(c.line, "value_count correlations need `condition.field`"))
        }
        _ => {}
    }
    let mut aliases = Vec::new();
    if let Some(a) = c.get("aliases") {
        let Kind::Map(entries) = &a.kind else {
            return Err(ctx.err(a.line, "`aliases` must be a map"));
        };
        for (alias, line, per_rule) in entries {
            let Kind::Map(map) = &per_rule.kind else {
                return Err(ctx.err(
                    *line,
                    format!("alias `{alias}` must map rule names to fields"),
                ));
            };
            let mut fields = Vec::new();
            for (rule, l, field) in map {
                let f = field
                    .as_text()
                    .ok_or_else(|| ctx.err(*l, "alias fields must be text"))?;
                fields.push((rule.clone(), f.to_owned()));
            }
            aliases.push(FieldAlias {
                alias: alias.clone(),
                fields,
            });
        }
    }
    let generate = match doc.get("generate").or_else(|| c.get("generate")) {
        None => false,
        Some(Node {
            kind: Kind::Scalar(Scalar::Bool(b)),
            ..
        }) => *b,
        Some(n) => return Err(ctx.err(n.line, "`generate` must be true or false")),
    };
    for (key, line, _) in match &c.kind {
        Kind::Map(e) => e.as_slice(),
        _ => &[],
    } {
        if ![
            "type",
            "rules",
            "group-by",
            "timespan",
            "timeframe",
            "condition",
            "aliases",
            "generate",
        ]
        .contains(&key.as_str())
        {
            return Err(ctx.err(*line, format!("unknown correlation field `{key}`")));
        }
    }
    let ratio = parse_ratio(doc, kind, condition.as_ref(), ctx)?;
    Ok(CorrelationRule {
        id: meta.id.clone(),
        sigma_id: meta.sigma_id.clone(),
        title: meta.title.clone(),
        description: meta.description.clone(),
        level: meta.level,
        tags: meta.tags.clone(),
        falsepositives: meta.falsepositives.clone(),
        kind,
        rules,
        group_by,
        timespan,
        condition,
        aliases,
        generate,
        ratio,
        file: ctx.file.to_owned(),
        line: meta.line,
    })
}

/// Our `trailwatch: {ratio: {numerator, min_percent, min_total}}` extension.
fn parse_ratio(
    doc: &Node,
    kind: CorrelationType,
    condition: Option<&CorrelationCondition>,
    ctx: &Ctx<'_>,
) -> Result<Option<CorrelationRatio>, LoadError> {
    let Some(ext) = doc.get("trailwatch") else {
        return Ok(None);
    };
    let Kind::Map(entries) = &ext.kind else {
        return Err(ctx.err(ext.line, "`trailwatch` must be a map"));
    };
    if let Some((key, line, _)) = entries.iter().find(|(k, _, _)| k != "ratio") {
        return Err(ctx.err(
            *line,
            format!("unknown `trailwatch` extension `{key}` (expected `ratio`)"),
        ));
    }
    let Some(r) = ext.get("ratio") else {
        return Ok(None);
    };
    if kind != CorrelationType::EventCount {
        return Err(ctx.err(
            r.line,
            "`trailwatch.ratio` only applies to `event_count` correlations",
        ));
    }
    if !condition.is_some_and(|c| {
        c.ops
            .iter()
            .any(|(op, _)| matches!(op, CmpOp::Gt | CmpOp::Gte))
    }) {
        return Err(ctx.err(
            r.line,
            "a ratio needs `condition: {gte: N}` (the lowest numerator count)",
        ));
    }
    let Kind::Map(fields) = &r.kind else {
        return Err(ctx.err(
            r.line,
            "`ratio` must be a map with numerator, min_percent, min_total",
        ));
    };
    if let Some((key, line, _)) = fields
        .iter()
        .find(|(k, _, _)| !["numerator", "min_percent", "min_total"].contains(&k.as_str()))
    {
        return Err(ctx.err(*line, format!("unknown ratio field `{key}`")));
    }
    let numerator = list_field(r, "numerator", ctx)?;
    if numerator.is_empty() {
        return Err(ctx.err(r.line, "`ratio.numerator` names no rule"));
    }
    let number = |key: &str| -> Result<u64, LoadError> {
        let n = r
            .get(key)
            .ok_or_else(|| ctx.err(r.line, format!("`ratio` has no `{key}`")))?;
        n.as_text()
            .and_then(|t| t.parse::<u64>().ok())
            .ok_or_else(|| ctx.err(n.line, format!("`{key}` needs a whole number")))
    };
    let min_percent = number("min_percent")?;
    if min_percent > 100 {
        return Err(ctx.err(r.line, "`min_percent` is a percentage (0 to 100)"));
    }
    Ok(Some(CorrelationRatio {
        numerator,
        min_percent,
        min_total: number("min_total")?,
    }))
}

fn parse_corr_condition(n: &Node, ctx: &Ctx<'_>) -> Result<CorrelationCondition, LoadError> {
    let Kind::Map(entries) = &n.kind else {
        return Err(ctx.err(
            n.line,
            "correlation `condition` must be a map such as `{gte: 10}`",
        ));
    };
    let mut field = None;
    let mut ops = Vec::new();
    for (key, line, v) in entries {
        let op = match key.as_str() {
            "field" => {
                field = Some(v.as_text().ok_or_else(|| ctx.err(*line, "`field` must be text"))?.to_owned());
                continue;
            }
            "gt" => CmpOp::Gt,
            "gte" => CmpOp::Gte,
            "lt" => CmpOp::Lt,
            "lte" => CmpOp::Lte,
            "eq" => CmpOp::Eq,
            other => return Err(ctx.err(*line, format!("unknown correlation condition `{other}` (expected gt, gte, lt, lte, eq, field)"))),
        };
        let value = v
            .as_text()
            .and_then(|t| t.parse::<u64>().ok())
            .ok_or_else(|| ctx.err(*line, format!("`{key}` needs a whole number")))?;
        ops.push((op, value));
    }
    if ops.is_empty() {
        return Err(ctx.err(n.line, "correlation `condition` has no comparison"));
    }
    Ok(CorrelationCondition { field, ops })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timespans() {
        assert_eq!(parse_timespan("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_timespan("10m"), Ok(Duration::from_secs(600)));
        assert_eq!(parse_timespan("1h"), Ok(Duration::from_secs(3600)));
        assert_eq!(parse_timespan("2d"), Ok(Duration::from_secs(172_800)));
        assert!(parse_timespan("1y").is_err());
        assert!(parse_timespan("m").is_err());
        assert!(parse_timespan("0m").is_err());
        assert!(parse_timespan("99999999999999999999h").is_err());
    }

    #[test]
    fn legacy_counts() {
        let (k, f, g, op, v) = parse_count("count() > 10").unwrap();
        assert_eq!(
            (k, f, g, op, v),
            (CorrelationType::EventCount, None, vec![], CmpOp::Gt, 10)
        );
        let (k, f, g, op, v) =
            parse_count("count(userIdentity.arn) by sourceIPAddress >= 3").unwrap();
        assert_eq!(k, CorrelationType::ValueCount);
        assert_eq!(f.as_deref(), Some("userIdentity.arn"));
        assert_eq!(g, vec!["sourceIPAddress".to_string()]);
        assert_eq!((op, v), (CmpOp::Gte, 3));
        assert!(parse_count("sum(x) > 3").is_err());
        assert!(parse_count("count() > x").is_err());
    }

    #[test]
    fn base64_offsets_are_found_whatever_surrounds_the_text() {
        let engine = &base64::engine::general_purpose::STANDARD;
        for text in ["ping", "http://evil", "ab"] {
            let variants = base64_offsets(text);
            for prefix in ["", "x", "yz", "abc", "long prefix"] {
                for suffix in ["", "!", "??", "tail"] {
                    let enc = engine.encode(format!("{prefix}{text}{suffix}"));
                    assert!(
                        variants.iter().any(|v| enc.contains(v.as_str())),
                        "{text:?} in {prefix:?}+{suffix:?}"
                    );
                }
            }
        }
    }
}

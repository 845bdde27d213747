//! CloudWatch Embedded Metric Format (EMF): metrics as one JSON log line on stdout.
//!
//! Lambda ships stdout to CloudWatch Logs, which extracts EMF lines into metrics: alarms on
//! parse errors or findings cost no `PutMetricData` calls and no latency.

use serde_json::{json, Map, Value};
use std::time::{SystemTime, UNIX_EPOCH};

/// The metrics namespace.
pub const NAMESPACE: &str = "trailwatch";

/// A metric unit EMF understands.
#[derive(Debug, Clone, Copy)]
pub enum Unit {
    /// A count.
    Count,
    /// Milliseconds.
    Milliseconds,
    /// Bytes.
    Bytes,
}

impl Unit {
    fn as_str(self) -> &'static str {
        match self {
            Unit::Count => "Count",
            Unit::Milliseconds => "Milliseconds",
            Unit::Bytes => "Bytes",
        }
    }
}

/// Render one EMF line with `dimensions` (name, value) and `metrics` (name, value, unit).
pub fn render(dimensions: &[(&str, &str)], metrics: &[(&str, f64, Unit)]) -> String {
    let ts = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0);
    let mut root = Map::new();
    let dim_names: Vec<&str> = dimensions.iter().map(|(k, _)| *k).collect();
    let defs: Vec<Value> = metrics
        .iter()
        .map(|(n, _, u)| json!({"Name": n, "Unit": u.as_str()}))
        .collect();
    root.insert(
        "_aws".into(),
        json!({"Timestamp": ts, "CloudWatchMetrics": [{"Namespace": NAMESPACE, "Dimensions": [dim_names], "Metrics": defs}]}),
    );
    for (k, v) in dimensions {
        root.insert((*k).into(), Value::String((*v).into()));
    }
    for (n, v, _) in metrics {
        root.insert((*n).into(), json!(v));
    }
    Value::Object(root).to_string()
}

/// Print one EMF line to stdout (where Lambda's log agent picks it up).
pub fn emit(dimensions: &[(&str, &str)], metrics: &[(&str, f64, Unit)]) {
    println!("{}", render(dimensions, metrics));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emf_shape() {
        let line = render(
            &[("Function", "log-processor")],
            &[("ParseErrors", 2.0, Unit::Count)],
        );
        let v: Value = serde_json::from_str(&line).unwrap();
        assert_eq!(v["_aws"]["CloudWatchMetrics"][0]["Namespace"], "trailwatch");
        assert_eq!(
            v["_aws"]["CloudWatchMetrics"][0]["Dimensions"][0][0],
            "Function"
        );
        assert_eq!(
            v["_aws"]["CloudWatchMetrics"][0]["Metrics"][0]["Name"],
            "ParseErrors"
        );
        assert_eq!(v["ParseErrors"], 2.0);
        assert_eq!(v["Function"], "log-processor");
    }
}

//! Output formats of `trailwatch scan`: JSON lines (the contract other tools read) and a
//! table for people.

use std::io::{self, Write};
use trailwatch::findings::{Finding, Severity};

/// Write one finding as a JSON line.
///
/// # Errors
/// When stdout is closed (e.g. piped into `head`).
pub fn write_jsonl(out: &mut impl Write, f: &Finding) -> io::Result<()> {
    serde_json::to_writer(&mut *out, f)?;
    out.write_all(b"\n")
}

fn clip(s: &str, width: usize) -> String {
    if s.chars().count() <= width {
        s.to_owned()
    } else {
        let mut t: String = s.chars().take(width.saturating_sub(1)).collect();
        t.push('…');
        t
    }
}

/// Write findings as an aligned table, most severe first, then by time.
///
/// # Errors
/// When stdout is closed.
pub fn write_table(out: &mut impl Write, findings: &mut [Finding]) -> io::Result<()> {
    findings.sort_by(|a, b| {
        b.severity
            .cmp(&a.severity)
            .then_with(|| a.event_time.cmp(&b.event_time))
            .then_with(|| a.rule_id.cmp(&b.rule_id))
    });
    let cols = [
        "SEVERITY",
        "TIME",
        "RULE",
        "EVENT",
        "ACCOUNT",
        "REGION",
        "PRINCIPAL",
    ];
    let rows: Vec<[String; 7]> = findings
        .iter()
        .map(|f| {
            [
                f.severity.as_str().to_uppercase(),
                f.event_time.clone(),
                clip(&f.rule_id, 48),
                clip(&f.event_name, 36),
                f.account_id.clone(),
                f.region.clone(),
                clip(f.principal.as_deref().unwrap_or("-"), 60),
            ]
        })
        .collect();
    let mut widths = cols.map(|c| c.chars().count());
    for r in &rows {
        for (w, cell) in widths.iter_mut().zip(r.iter()) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |out: &mut dyn Write, cells: &[&str]| -> io::Result<()> {
        let mut s = String::new();
        for (i, (c, w)) in cells.iter().zip(widths.iter()).enumerate() {
            if i + 1 == cells.len() {
                s.push_str(c);
            } else {
                s.push_str(&format!("{c:<w$}  "));
            }
        }
        writeln!(out, "{}", s.trim_end())
    };
    line(out, &cols)?;
    for r in &rows {
        let cells: Vec<&str> = r.iter().map(String::as_str).collect();
        line(out, &cells)?;
    }
    Ok(())
}

/// Findings per severity, most severe first, for the summary line.
pub fn severity_counts(counts: &[u64; 5]) -> String {
    Severity::ALL
        .iter()
        .rev()
        .map(|s| format!("{} {}", counts[*s as usize], s.as_str()))
        .collect::<Vec<_>>()
        .join(", ")
}

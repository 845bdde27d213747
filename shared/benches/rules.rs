//! Criterion micro-benchmarks of the rule engine: loading the bundled pack, matching
//! records against it, and the whole pipeline over an in-memory gzip log file.
//! `cargo bench -p trailwatch --bench rules`
// criterion_main! generates an undocumented `pub fn main`
#![allow(missing_docs)]

mod common;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use std::hint::black_box;
use trailwatch::detect::RuleSet;
use trailwatch::ingest::{self, ReaderOptions};
use trailwatch::model::Record;
use trailwatch::pipeline::{self, Evaluator};

const N: usize = 2_000;

fn rules(c: &mut Criterion) {
    let Ok(set) = RuleSet::bundled() else {
        eprintln!("bundled rules do not load: skipping the rule benchmarks");
        return;
    };
    let recs = common::records(N);
    let mut g = c.benchmark_group("rules");
    g.bench_function("load bundled pack", |b| {
        b.iter(|| black_box(RuleSet::bundled().is_ok()))
    });
    g.throughput(Throughput::Elements(N as u64));
    g.bench_function("match fresh records", |b| {
        b.iter_batched(
            || {
                recs.iter()
                    .filter_map(|r| Record::from_json(r.as_str()).ok())
                    .collect::<Vec<_>>()
            },
            |parsed| {
                let mut out = Vec::new();
                for r in &parsed {
                    out.clear();
                    set.matches(r, &mut out);
                    black_box(out.len());
                }
            },
            BatchSize::LargeInput,
        )
    });
    g.bench_function("evaluate (findings built)", |b| {
        b.iter_batched(
            || {
                recs.iter()
                    .filter_map(|r| Record::from_json(r.as_str()).ok())
                    .collect::<Vec<_>>()
            },
            |parsed| {
                let mut eval = Evaluator::new(&set);
                let mut out = Vec::new();
                for r in &parsed {
                    out.clear();
                    black_box(eval.evaluate(r, "bench", &mut out));
                }
            },
            BatchSize::LargeInput,
        )
    });
    let gz = common::log_file_gz(N);
    g.bench_function("pipeline over gzip log file", |b| {
        b.iter(|| {
            let Ok(reader) =
                ingest::open(std::io::Cursor::new(gz.clone()), ReaderOptions::default())
            else {
                return (0, 0);
            };
            let mut n = 0u64;
            let report = pipeline::scan(reader, &set, "bench", |_| n += 1);
            black_box((report.records_read, n))
        })
    });
    g.finish();
}

criterion_group!(benches, rules);
criterion_main!(benches);

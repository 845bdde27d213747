//! Criterion micro-benchmarks of the reading half of the hot path: structural scan, record
//! indexing, field access, and the streaming reader over plain and gzip input.
//! `cargo bench -p trailwatch --bench parser`
// criterion_main! generates an undocumented `pub fn main`
#![allow(missing_docs)]

mod common;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use std::hint::black_box;
use trailwatch::detect::Event;
use trailwatch::ingest::scan::Scanner;
use trailwatch::ingest::{self, Item, ReaderOptions, RecordReader};
use trailwatch::model::Record;

const N: usize = 2_000;

fn scanner(c: &mut Criterion) {
    let doc = common::records(N).join("\n");
    let mut g = c.benchmark_group("scanner");
    g.throughput(Throughput::Bytes(doc.len() as u64));
    g.bench_function("find record ends", |b| {
        let mut buf = Vec::new();
        b.iter(|| {
            let mut s = Scanner::new(doc.as_bytes());
            let mut n = 0;
            while let Ok(Some(_)) = s.peek() {
                buf.clear();
                let _ = s.value(&mut buf, usize::MAX);
                n += 1;
            }
            black_box(n)
        })
    });
    g.finish();
}

fn record(c: &mut Criterion) {
    let recs = common::records(N);
    let bytes: usize = recs.iter().map(String::len).sum();
    let mut g = c.benchmark_group("record");
    g.throughput(Throughput::Bytes(bytes as u64));
    g.bench_function("from_json", |b| {
        b.iter_batched(
            || recs.clone(),
            |recs| {
                for r in recs {
                    let _ = black_box(Record::from_json(r));
                }
            },
            BatchSize::LargeInput,
        )
    });
    let parsed: Vec<Record> = recs
        .iter()
        .filter_map(|r| Record::from_json(r.as_str()).ok())
        .collect();
    g.throughput(Throughput::Elements(parsed.len() as u64));
    g.bench_function("event_name + event_source", |b| {
        b.iter(|| {
            for r in &parsed {
                black_box((r.event_name(), r.event_source()));
            }
        })
    });
    g.bench_function("nested str_at (fresh records)", |b| {
        b.iter_batched(
            || {
                recs.iter()
                    .filter_map(|r| Record::from_json(r.as_str()).ok())
                    .collect::<Vec<_>>()
            },
            |recs| {
                for r in &recs {
                    black_box(r.str_at("userIdentity.type"));
                }
            },
            BatchSize::LargeInput,
        )
    });
    g.finish();
}

fn reader(c: &mut Criterion) {
    let doc = common::log_file(N);
    let gz = common::log_file_gz(N);
    let mut g = c.benchmark_group("reader");
    g.throughput(Throughput::Bytes(doc.len() as u64));
    g.bench_function("plain log file", |b| {
        b.iter(|| {
            let r = RecordReader::new(doc.as_bytes(), ReaderOptions::default());
            black_box(r.filter(|i| matches!(i, Ok(Item::Record(_)))).count())
        })
    });
    g.bench_function("gzip log file", |b| {
        b.iter(|| {
            let Ok(r) = ingest::open(std::io::Cursor::new(gz.clone()), ReaderOptions::default())
            else {
                return 0;
            };
            black_box(r.filter(|i| matches!(i, Ok(Item::Record(_)))).count())
        })
    });
    g.finish();
}

criterion_group!(benches, scanner, record, reader);
criterion_main!(benches);

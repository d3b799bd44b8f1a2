//! The framer under the two loads DESIGN.md measured eventsource-stream on:
//! one 1 MiB event arriving in 1 KiB reads (quadratic there: 666 ms), and
//! 20,000 small events arriving in 256 KiB reads (10.5 µs/event there).
//! Run: `cargo bench --bench framing`.
use chatwire::provider::frame::{Framer, Framing};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use std::hint::black_box;

fn feed(body: &[u8], read: usize) -> usize {
    let mut f = Framer::new(Framing::Sse, 16 << 20);
    let mut out = Vec::new();
    let mut n = 0;
    for piece in body.chunks(read) {
        f.push(piece, &mut out).ok();
        n += out.len();
        out.clear();
    }
    f.finish(&mut out).ok();
    n + out.len()
}

fn bench(c: &mut Criterion) {
    let mut big = b"event: content_block_delta\ndata: {\"text\":\"".to_vec();
    big.extend(std::iter::repeat_n(b'x', 1 << 20));
    big.extend_from_slice(b"\"}\n\n");
    let mut g = c.benchmark_group("framer");
    g.throughput(Throughput::Bytes(big.len() as u64));
    g.bench_function("one 1 MiB event in 1 KiB reads", |b| {
        b.iter(|| assert_eq!(feed(black_box(&big), 1024), 1))
    });

    let event = "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\" token\"}}\n\n";
    let small: Vec<u8> = event.repeat(20_000).into_bytes();
    g.throughput(Throughput::Elements(20_000));
    g.bench_function("20k small events in 256 KiB reads", |b| {
        b.iter(|| assert_eq!(feed(black_box(&small), 256 << 10), 20_000))
    });
    g.bench_function("20k small events in 1 KiB reads", |b| {
        b.iter(|| assert_eq!(feed(black_box(&small), 1024), 20_000))
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);

//! Inference of the reference model (issue 4) on the CPU execution provider: one study's
//! worth of vertebra patches (17, T1-L5) through `Model::predict`, at 1 and 2 intra-op
//! threads and several batch sizes. Per-study latency; studies per minute is 60 s over
//! it. Needs ONNX Runtime (`scripts/setup-ort`).
//!
//! `cargo bench -p spinewatch-benches --bench infer`

#![allow(missing_docs)] // criterion_main! generates undocumented items

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use ndarray::Array4;
use rand::{Rng, SeedableRng};
use spinewatch_infer::runtime::{DylibRequest, Runtime};
use spinewatch_infer::{Model, SessionOptions};
use spinewatch_testkit::peers;

/// Vertebrae of a whole thoracolumbar study.
const PATCHES: usize = 17;

fn bench(c: &mut Criterion) {
    let runtime = Runtime::load(DylibRequest::default()).expect("ONNX Runtime (scripts/setup-ort)");
    let manifest = peers::workspace_root().join("models/vertebra-fracture/manifest.toml");
    let mut rng = rand_pcg::Pcg64::seed_from_u64(1);
    let x = Array4::<f32>::from_shape_fn((PATCHES, 1, 64, 64), |_| rng.random_range(0.0..1.0));
    let mut group = c.benchmark_group("predict_study");
    group.throughput(Throughput::Elements(PATCHES as u64));
    for threads in [1, 2] {
        for batch in [1, 4, 8, 17] {
            let mut model = Model::load(
                runtime,
                &manifest,
                SessionOptions {
                    threads,
                    batch_size: batch,
                    ..SessionOptions::default()
                },
            )
            .expect("the reference model loads");
            group.bench_with_input(
                BenchmarkId::new(format!("threads{threads}"), batch),
                &batch,
                |b, _| b.iter(|| model.predict(x.view()).expect("inference")),
            );
        }
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);

//! Kernels of `spinewatch synth`: rendering one 512x512 slice of the phantom, adding
//! reconstruction noise, storing pixels, and RLE encoding.

#![allow(missing_docs)] // criterion_main! generates undocumented items

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use rand::SeedableRng;
use rand_pcg::Pcg64Mcg;
use spinewatch_testkit::synth::spec::Kernel;
use spinewatch_testkit::synth::{SynthSpec, acquisition, anatomy, dicom, render, rle};

fn synth_kernels(c: &mut Criterion) {
    let mut spec = SynthSpec::new(1);
    spec.fractures = vec!["L1:2:wedge".parse().expect("valid fracture")];
    let phantom = anatomy::build(&spec);
    let series = acquisition::plan(&spec, &phantom, 1.0, 1.0);
    // A slice through L1: vertebra, ribs-free abdomen, organs, table.
    let l1_z = phantom.vertebrae[12].frame.origin.z;
    let slice = series
        .slices
        .iter()
        .min_by(|a, b| {
            (a.location_mm - l1_z)
                .abs()
                .total_cmp(&(b.location_mm - l1_z).abs())
        })
        .expect("the series has slices");
    let n = usize::from(spec.matrix);
    let edge = Kernel::Standard.edge_factor() * spec.pixel_spacing_mm;

    let mut g = c.benchmark_group("spinewatch_testkit::synth");
    g.throughput(Throughput::Elements((n * n) as u64));
    g.bench_function("render/slice_512", |b| {
        b.iter(|| {
            render::render(
                &phantom.primitives,
                &slice.plane,
                1.0,
                edge,
                phantom.background_hu,
            )
        })
    });
    let hu = render::render(
        &phantom.primitives,
        &slice.plane,
        1.0,
        edge,
        phantom.background_hu,
    );
    g.bench_function("noise/slice_512", |b| {
        b.iter_batched(
            || (hu.clone(), Pcg64Mcg::seed_from_u64(7)),
            |(mut h, mut rng)| dicom::add_noise(&mut h, n, n, 12.0, Kernel::Standard, &mut rng),
            BatchSize::LargeInput,
        )
    });
    g.bench_function("store/slice_512", |b| {
        b.iter(|| dicom::store_pixels(&hu, n, n, &spec))
    });
    let stored = dicom::store_pixels(&hu, n, n, &spec);
    g.bench_function("rle/slice_512", |b| {
        b.iter(|| rle::encode_frame(&stored, n, 2))
    });
    g.finish();
}

criterion_group!(benches, synth_kernels);
criterion_main!(benches);

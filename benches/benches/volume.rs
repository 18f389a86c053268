//! Kernels of `spinewatch-volume`: isotropic trilinear resampling (issue 3) of a
//! 512x512x300 phantom volume built in memory (no disk inside a measurement).
//!
//! `cargo bench -p spinewatch-benches --bench volume`

#![allow(missing_docs)] // criterion_main! generates undocumented items

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use ndarray::{Array3, Axis};
use rayon::prelude::*;
use spinewatch_core::Affine;
use spinewatch_testkit::synth::spec::Kernel;
use spinewatch_testkit::synth::{SynthSpec, acquisition, anatomy, render};
use spinewatch_volume::HuVolume;
use spinewatch_volume::resample::resample;

/// Slices of the benchmark volumes: clinical size, 512x512x300 i16 (150 MiB).
const SLICES: usize = 300;

/// The testkit phantom rendered on `SLICES` noise-free axial slices (1 mm thick, every
/// `spacing_mm`, tilted by `tilt_deg`), in the layout `HuVolume::decode` produces:
/// slices ascending along the normal.
fn phantom_volume(spacing_mm: f64, tilt_deg: f64) -> HuVolume {
    let mut spec = SynthSpec::new(1);
    spec.fractures = vec!["L1:2:wedge".parse().expect("valid fracture")];
    spec.slices = Some(SLICES);
    spec.slice_spacing_mm = spacing_mm;
    spec.gantry_tilt_deg = tilt_deg;
    let phantom = anatomy::build(&spec);
    let mut slices = acquisition::plan(&spec, &phantom, 1.0, spacing_mm).slices;
    let normal = slices[0].plane.normal();
    slices.sort_by(|a, b| {
        a.plane
            .origin
            .dot(normal)
            .total_cmp(&b.plane.origin.dot(normal))
    });
    let (first, last) = (slices[0].plane, slices[slices.len() - 1].plane);
    let edge = Kernel::Standard.edge_factor() * spec.pixel_spacing_mm;
    let mut data = Array3::<i16>::zeros((slices.len(), first.rows, first.cols));
    data.axis_iter_mut(Axis(0))
        .into_par_iter()
        .zip(&slices)
        .for_each(|(mut out, s)| {
            let hu = render::render(
                &phantom.primitives,
                &s.plane,
                1.0,
                edge,
                phantom.background_hu,
            );
            for (o, h) in out.iter_mut().zip(hu) {
                *o = h.round() as i16;
            }
        });
    HuVolume {
        data,
        affine: Affine {
            origin: first.origin,
            col_step: first.row_dir * first.spacing_mm,
            row_step: first.col_dir * first.spacing_mm,
            slice_step: (last.origin - first.origin) / (slices.len() - 1) as f64,
        },
        padded_voxels: 0,
    }
}

fn resample_kernels(c: &mut Criterion) {
    let mut g = c.benchmark_group("spinewatch_volume::resample");
    // One iteration resamples a whole clinical volume (~0.1 s): 10 samples are enough
    // for a stable mean, where the default 100 would take minutes.
    g.sample_size(10);
    for (name, spacing_mm, tilt_deg) in [
        // Slices every 1 mm: output slices fall on input slices (z blend of one slice).
        ("trilinear/axial_1mm", 1.0, 0.0),
        // Slices every 0.8 mm with 15 degrees of gantry tilt: the general sheared path.
        ("trilinear/tilted_0.8mm", 0.8, 15.0),
    ] {
        let volume = phantom_volume(spacing_mm, tilt_deg);
        let voxels = resample(&volume, 1.0).expect("resamples").data.len();
        g.throughput(Throughput::Elements(voxels as u64));
        g.bench_function(name, |b| {
            // The output (~100 MB) is dropped outside the timing.
            b.iter_batched(
                || &volume,
                |v| resample(v, 1.0).expect("resamples"),
                BatchSize::LargeInput,
            )
        });
    }
    g.finish();
}

criterion_group!(benches, resample_kernels);
criterion_main!(benches);

//! Times `Model::predict` on a fixed input, for the side-by-side comparison with Python's
//! onnxruntime (`benches/e2e/infer_vs_python.sh`): the same model, input, batch size and
//! threads, preprocessing excluded.
//!
//! Usage: `predict_timing MANIFEST INPUT.npy --batch N --threads T --repeat R
//! [--provider cpu|cuda|tensorrt]`; prints
//! one JSON object with the median and mean seconds per call over R calls (after one
//! warm-up call).

use std::path::PathBuf;
use std::time::Instant;

use ndarray::Array4;
use spinewatch_infer::runtime::{DylibRequest, Runtime};
use spinewatch_infer::{ExecutionProvider, Model, SessionOptions};

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let usage = "usage: predict_timing MANIFEST INPUT.npy --batch N --threads T --repeat R";
    let manifest = PathBuf::from(args.get(1).ok_or_else(|| anyhow::anyhow!(usage))?);
    let input = PathBuf::from(args.get(2).ok_or_else(|| anyhow::anyhow!(usage))?);
    let flag = |name: &str, default: usize| -> anyhow::Result<usize> {
        match args.iter().position(|a| a == name) {
            Some(i) => Ok(args
                .get(i + 1)
                .ok_or_else(|| anyhow::anyhow!(usage))?
                .parse()?),
            None => Ok(default),
        }
    };
    let (batch, threads, repeat) = (
        flag("--batch", 16)?,
        flag("--threads", 1)?,
        flag("--repeat", 50)?,
    );
    let provider = match args.iter().position(|a| a == "--provider") {
        Some(i) => match args.get(i + 1).map(String::as_str) {
            Some("cuda") => ExecutionProvider::Cuda,
            Some("tensorrt") => ExecutionProvider::TensorRt,
            Some("cpu") => ExecutionProvider::Cpu,
            _ => anyhow::bail!(usage),
        },
        None => ExecutionProvider::Cpu,
    };
    let runtime = Runtime::load(DylibRequest::default())?;
    let mut model = Model::load(
        runtime,
        &manifest,
        SessionOptions {
            batch_size: batch,
            threads,
            provider,
            allow_cpu_fallback: false,
        },
    )?;
    let x: Array4<f32> = ndarray_npy::read_npy(&input)?;
    model.predict(x.view())?;
    let mut times = Vec::with_capacity(repeat);
    for _ in 0..repeat {
        let t = Instant::now();
        std::hint::black_box(model.predict(x.view())?);
        times.push(t.elapsed().as_secs_f64());
    }
    let mean = times.iter().sum::<f64>() / times.len() as f64;
    times.sort_by(f64::total_cmp);
    println!(
        "{{\"impl\": \"rust\", \"provider\": \"{}\", \"patches\": {}, \"batch\": {batch}, \"threads\": {threads}, \"median_s\": {}, \"mean_s\": {mean}}}",
        model.provider,
        x.len_of(ndarray::Axis(0)),
        times[times.len() / 2]
    );
    Ok(())
}

//! A fracture model: an ONNX file checked against its manifest, run in an ONNX Runtime
//! session on the configured execution provider.
//!
//! The manifest (`manifest.toml` beside the ONNX file, written by `models/train.py`)
//! says what the file expects and means: the input's name, shape and preprocessing (the
//! sagittal reformat's spacing, width, slab, patch size and HU window), the outputs,
//! the operating threshold and the file's SHA-256. [`Model::load`] refuses a file whose
//! checksum, input or outputs differ from it: a hospital swapping in its own validated
//! model gets an error, not silently wrong preprocessing.

use std::path::{Path, PathBuf};

use ndarray::{Array2, ArrayView4, Axis, s};
use ort::session::Session;
use ort::value::TensorRef;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use spinewatch_volume::reformat::ReformatManifest;

use crate::provider::ExecutionProvider;
use crate::runtime::Runtime;
use crate::{Error, Result};

/// The manifest of a model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelManifest {
    /// Identity and file.
    pub model: ModelInfo,
    /// The one input.
    pub input: InputSpec,
    /// The outputs, in order: fracture probability `[n, 1]`, grade probabilities `[n, 4]`.
    pub outputs: Vec<OutputSpec>,
    /// Operating thresholds.
    pub thresholds: Thresholds,
    /// How it was trained (free-form, reported).
    #[serde(default)]
    pub training: toml::Table,
}

/// `[model]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelInfo {
    /// Model name.
    pub name: String,
    /// Model version, reported with every finding.
    pub version: String,
    /// ONNX file, relative to the manifest.
    pub file: PathBuf,
    /// SHA-256 of the ONNX file, lower-case hex.
    pub sha256: String,
    /// ONNX opset.
    pub opset: u32,
    /// What it is for.
    #[serde(default)]
    pub intended_use: String,
}

/// `[input]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InputSpec {
    /// Input name in the graph.
    pub name: String,
    /// `[batch, channel, rows, columns]`, -1 for a dynamic batch.
    pub shape: Vec<i64>,
    /// Element type; only `float32`.
    pub dtype: String,
    /// How HU become input values; only `window`.
    pub normalisation: String,
    /// The reformat the patches are cut from.
    pub reformat: ReformatManifest,
}

/// `[[outputs]]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OutputSpec {
    /// Output name in the graph.
    pub name: String,
    /// Shape, -1 for the batch.
    pub shape: Vec<i64>,
    /// Element type; only `float32`.
    pub dtype: String,
    /// What it means.
    #[serde(default)]
    pub meaning: String,
}

/// `[thresholds]`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Thresholds {
    /// A vertebra is flagged at this probability or more; a study when any is.
    pub vertebra: f64,
}

/// Number of Genant grades the grade output covers (0-3).
pub const GRADES: usize = 4;

impl ModelManifest {
    /// Reads and checks the manifest's own consistency (not yet the ONNX file).
    pub fn read(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|source| Error::ModelIo {
            path: path.to_owned(),
            source,
        })?;
        let m: Self = toml::from_str(&text).map_err(|e| Error::ModelManifest {
            path: path.to_owned(),
            problem: e.to_string(),
        })?;
        let bad = |problem: String| Error::ModelManifest {
            path: path.to_owned(),
            problem,
        };
        let [rows, cols] = m.input.reformat.patch_size;
        if m.input.shape.len() != 4 || m.input.shape[1..] != [1, rows as i64, cols as i64] {
            return Err(bad(format!(
                "input shape {:?} is not [-1, 1, {rows}, {cols}] (the patch size)",
                m.input.shape
            )));
        }
        if m.input.dtype != "float32" || m.input.normalisation != "window" {
            return Err(bad(format!(
                "input {} / {} not supported (float32 / window)",
                m.input.dtype, m.input.normalisation
            )));
        }
        match m.outputs.as_slice() {
            [p, g] if p.shape[1..] == [1] && g.shape[1..] == [GRADES as i64] => {}
            _ => {
                return Err(bad(
                    "outputs must be [fracture probability [-1, 1], grade probabilities [-1, 4]]"
                        .into(),
                ));
            }
        }
        if !(0.0..=1.0).contains(&m.thresholds.vertebra) {
            return Err(bad(format!(
                "threshold {} is not a probability",
                m.thresholds.vertebra
            )));
        }
        Ok(m)
    }
}

/// How to run a model.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionOptions {
    /// Execution provider requested.
    pub provider: ExecutionProvider,
    /// Fall back to the CPU provider when a GPU provider fails to register (otherwise an
    /// error).
    pub allow_cpu_fallback: bool,
    /// Threads inside one inference (intra-op).
    pub threads: usize,
    /// Vertebra patches per inference call.
    pub batch_size: usize,
}

impl Default for SessionOptions {
    fn default() -> Self {
        Self {
            provider: ExecutionProvider::Cpu,
            allow_cpu_fallback: false,
            threads: 1,
            batch_size: 16,
        }
    }
}

/// A loaded, checked model.
pub struct Model {
    /// Its manifest.
    pub manifest: ModelManifest,
    /// The ONNX file.
    pub path: PathBuf,
    /// The provider actually running it.
    pub provider: ExecutionProvider,
    session: Session,
    batch_size: usize,
}

/// The model's outputs for a batch of patches.
#[derive(Debug, Clone, PartialEq)]
pub struct Prediction {
    /// Fracture probability per patch.
    pub probability: Vec<f32>,
    /// Grade probabilities per patch, `[n, 4]`.
    pub grades: Array2<f32>,
}

/// SHA-256 of a file, lower-case hex.
pub fn sha256_file(path: &Path) -> Result<String> {
    let bytes = std::fs::read(path).map_err(|source| Error::ModelIo {
        path: path.to_owned(),
        source,
    })?;
    Ok(Sha256::digest(&bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect())
}

impl Model {
    /// Loads the model of `manifest_path`: checks the ONNX file's checksum, opens a
    /// session on the requested provider and checks its input and outputs.
    pub fn load(runtime: &Runtime, manifest_path: &Path, options: SessionOptions) -> Result<Self> {
        let manifest = ModelManifest::read(manifest_path)?;
        let path = manifest_path
            .parent()
            .unwrap_or(Path::new("."))
            .join(&manifest.model.file);
        let sha = sha256_file(&path)?;
        if sha != manifest.model.sha256 {
            return Err(Error::ModelMismatch {
                path,
                problem: format!(
                    "SHA-256 {sha} differs from the manifest's {}",
                    manifest.model.sha256
                ),
            });
        }
        let (session, provider) = open_session(runtime, &path, options)?;
        let model = Self {
            manifest,
            path,
            provider,
            session,
            batch_size: options.batch_size.max(1),
        };
        model.check_graph()?;
        tracing::info!(
            model = %model.manifest.model.name,
            version = %model.manifest.model.version,
            provider = %model.provider,
            "model loaded"
        );
        Ok(model)
    }

    fn check_graph(&self) -> Result<()> {
        let mismatch = |problem: String| Error::ModelMismatch {
            path: self.path.clone(),
            problem,
        };
        let dims = |outlet: &ort::value::Outlet| -> Option<Vec<i64>> {
            outlet
                .dtype()
                .tensor_shape()
                .map(|s| s.iter().copied().collect())
        };
        let compatible = |graph: &[i64], spec: &[i64]| {
            graph.len() == spec.len()
                && graph
                    .iter()
                    .zip(spec)
                    .all(|(g, s)| *g == *s || *g < 0 || *s < 0)
        };
        let inputs = self.session.inputs();
        let [input] = inputs else {
            return Err(mismatch(format!("{} inputs, expected 1", inputs.len())));
        };
        let spec = &self.manifest.input;
        if input.name() != spec.name
            || !dims(input).is_some_and(|d| compatible(&d, &spec.shape))
            || input.dtype().tensor_type() != Some(ort::value::TensorElementType::Float32)
        {
            return Err(mismatch(format!(
                "input {} {:?} is not the manifest's {} {:?} float32",
                input.name(),
                dims(input),
                spec.name,
                spec.shape
            )));
        }
        let outputs = self.session.outputs();
        if outputs.len() != self.manifest.outputs.len() {
            return Err(mismatch(format!(
                "{} outputs, the manifest has {}",
                outputs.len(),
                self.manifest.outputs.len()
            )));
        }
        for (o, spec) in outputs.iter().zip(&self.manifest.outputs) {
            if o.name() != spec.name || !dims(o).is_some_and(|d| compatible(&d, &spec.shape)) {
                return Err(mismatch(format!(
                    "output {} {:?} is not the manifest's {} {:?}",
                    o.name(),
                    dims(o),
                    spec.name,
                    spec.shape
                )));
            }
        }
        Ok(())
    }

    /// Runs the model over `patches` (`[n, 1, rows, columns]`, the manifest's input),
    /// in batches of the configured size.
    pub fn predict(&mut self, patches: ArrayView4<'_, f32>) -> Result<Prediction> {
        let n = patches.len_of(Axis(0));
        let mut probability = Vec::with_capacity(n);
        let mut grades = Array2::<f32>::zeros((n, GRADES));
        let input_name = self.manifest.input.name.clone();
        let (p_name, g_name) = (
            self.manifest.outputs[0].name.clone(),
            self.manifest.outputs[1].name.clone(),
        );
        let mut start = 0;
        while start < n {
            let end = (start + self.batch_size).min(n);
            let batch = patches.slice(s![start..end, .., .., ..]);
            let batch = batch.as_standard_layout();
            let tensor = TensorRef::from_array_view(batch.view()).map_err(Error::Run)?;
            let outputs = self
                .session
                .run(ort::inputs![input_name.as_str() => tensor])
                .map_err(Error::Run)?;
            let (_, p) = outputs[p_name.as_str()]
                .try_extract_tensor::<f32>()
                .map_err(Error::Run)?;
            let (_, g) = outputs[g_name.as_str()]
                .try_extract_tensor::<f32>()
                .map_err(Error::Run)?;
            if p.len() != end - start || g.len() != (end - start) * GRADES {
                return Err(Error::ModelMismatch {
                    path: self.path.clone(),
                    problem: format!(
                        "{} probabilities and {} grade values for {} patches",
                        p.len(),
                        g.len(),
                        end - start
                    ),
                });
            }
            probability.extend_from_slice(p);
            for (i, row) in g.chunks(GRADES).enumerate() {
                for (k, v) in row.iter().enumerate() {
                    grades[[start + i, k]] = *v;
                }
            }
            start = end;
        }
        Ok(Prediction {
            probability,
            grades,
        })
    }
}

/// Opens a session on the requested provider; a GPU provider that fails to register is
/// an error unless CPU fallback is allowed. Returns the provider actually used.
fn open_session(
    runtime: &Runtime,
    path: &Path,
    options: SessionOptions,
) -> Result<(Session, ExecutionProvider)> {
    let builder = |provider: ExecutionProvider| -> Result<Session> {
        let mut b = Session::builder(runtime.environment())
            .map_err(Error::Session)?
            .with_intra_threads(options.threads.max(1))
            .map_err(|e| Error::Session(e.into()))?;
        let dispatch = match provider {
            ExecutionProvider::Cpu => None,
            ExecutionProvider::Cuda => Some(ort::ep::CUDA::default().build().error_on_failure()),
            ExecutionProvider::TensorRt => {
                Some(ort::ep::TensorRT::default().build().error_on_failure())
            }
        };
        if let Some(d) = dispatch {
            b = b
                .with_execution_providers([d])
                .map_err(|e| Error::ProviderUnavailable {
                    provider,
                    detail: e.to_string(),
                })?;
        }
        b.commit_from_file(path).map_err(|source| Error::ModelOpen {
            path: path.to_owned(),
            source,
        })
    };
    match builder(options.provider) {
        Ok(s) => Ok((s, options.provider)),
        Err(e @ Error::ProviderUnavailable { .. }) if options.allow_cpu_fallback => {
            tracing::warn!(error = %e, "falling back to the CPU execution provider");
            Ok((builder(ExecutionProvider::Cpu)?, ExecutionProvider::Cpu))
        }
        Err(e) => Err(e),
    }
}

//! Execution providers spinewatch can be configured to run a model on.

use std::fmt;

use serde::{Deserialize, Serialize};

/// An ONNX Runtime execution provider, as named in `[runtime] execution_provider`.
///
/// Whether one is usable depends on the library that was loaded: see
/// [`Runtime::available_providers`](crate::Runtime::available_providers), which reports
/// [`ort_name`](Self::ort_name)s.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ExecutionProvider {
    /// The default CPU provider, present in every ONNX Runtime build.
    #[default]
    Cpu,
    /// NVIDIA CUDA.
    Cuda,
    /// NVIDIA TensorRT.
    TensorRt,
}

impl ExecutionProvider {
    /// Every provider, in configuration order.
    pub const ALL: [Self; 3] = [Self::Cpu, Self::Cuda, Self::TensorRt];

    /// The name used in the config file (`cpu`, `cuda`, `tensorrt`).
    pub fn config_name(self) -> &'static str {
        match self {
            Self::Cpu => "cpu",
            Self::Cuda => "cuda",
            Self::TensorRt => "tensorrt",
        }
    }

    /// The name ONNX Runtime gives the provider in `GetAvailableProviders`.
    pub fn ort_name(self) -> &'static str {
        match self {
            Self::Cpu => "CPUExecutionProvider",
            Self::Cuda => "CUDAExecutionProvider",
            Self::TensorRt => "TensorrtExecutionProvider",
        }
    }
}

impl fmt::Display for ExecutionProvider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.config_name())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests: a panic is the failure report
mod tests {
    use super::*;

    #[test]
    fn config_names_match_serde() {
        #[derive(Deserialize)]
        struct Wrap {
            ep: ExecutionProvider,
        }
        for ep in ExecutionProvider::ALL {
            let map = serde::de::value::MapDeserializer::<_, serde::de::value::Error>::new(
                [("ep", ep.config_name())].into_iter(),
            );
            let parsed = Wrap::deserialize(map).expect("config name deserializes");
            assert_eq!(parsed.ep, ep);
        }
    }
}

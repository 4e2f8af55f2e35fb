//! The fixtures of `scripts/make_model_fixtures.py` as the tests read them: the test backend,
//! the fixture directory, and a case's reference inputs and outputs (`io.safetensors`).

#![allow(dead_code)]

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use burn::prelude::*;
use burn::tensor::TensorData;

#[cfg(not(feature = "test-wgpu"))]
pub type TestBackend = burn::backend::Flex;
#[cfg(feature = "test-wgpu")]
pub type TestBackend = burn::backend::Wgpu;

/// Maximum absolute difference allowed between our outputs and HuggingFace's.
pub const TOLERANCE: f32 = 1e-4;

pub fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

/// The reference inputs and outputs of one fixture case.
pub struct Io {
    pub tensors: HashMap<String, (Vec<usize>, Vec<f32>, Vec<i64>)>,
}

impl Io {
    pub fn load(case: &str) -> Self {
        let bytes = std::fs::read(fixtures().join(case).join("io.safetensors")).expect("fixture io file");
        let st = safetensors::SafeTensors::deserialize(&bytes).expect("valid safetensors");
        let mut tensors = HashMap::new();
        for (name, view) in st.tensors() {
            let shape = view.shape().to_vec();
            let data = view.data();
            let (f, i) = match view.dtype() {
                safetensors::Dtype::F32 => {
                    (data.chunks_exact(4).map(|b| f32::from_le_bytes(b.try_into().unwrap())).collect(), vec![])
                }
                safetensors::Dtype::I64 => {
                    (vec![], data.chunks_exact(8).map(|b| i64::from_le_bytes(b.try_into().unwrap())).collect())
                }
                other => panic!("unexpected dtype {other:?} for {name}"),
            };
            tensors.insert(name, (shape, f, i));
        }
        Self { tensors }
    }

    pub fn ints(&self, name: &str) -> Tensor<TestBackend, 2, Int> {
        let (shape, _, values) = &self.tensors[name];
        Tensor::from_data(TensorData::new(values.clone(), [shape[0], shape[1]]), &Default::default())
    }

    pub fn floats(&self, name: &str) -> Tensor<TestBackend, 3> {
        let (shape, values, _) = &self.tensors[name];
        Tensor::from_data(TensorData::new(values.clone(), [shape[0], shape[1], shape[2]]), &device())
    }

    pub fn inputs(&self) -> [Tensor<TestBackend, 2, Int>; 3] {
        [self.ints("input_ids"), self.ints("token_type_ids"), self.ints("attention_mask")]
    }

    #[track_caller]
    pub fn check<const D: usize>(&self, name: &str, actual: Tensor<TestBackend, D>) {
        let (shape, expected, _) = &self.tensors[name];
        assert_eq!(&actual.dims().to_vec(), shape, "{name}: shape");
        let actual = actual.into_data().convert::<f32>().to_vec::<f32>().unwrap();
        let max = actual.iter().zip(expected).map(|(a, e)| (a - e).abs()).fold(0.0f32, f32::max);
        assert!(max <= TOLERANCE, "{name}: max abs difference {max:e} > {TOLERANCE:e}");
        eprintln!("{name}: max abs difference {max:e}");
    }
}

impl Io {
    /// Like [`Io::check`], against the first row of the expected tensor.
    #[track_caller]
    pub fn check_row0<const D: usize>(&self, name: &str, actual: Tensor<TestBackend, D>) {
        let (shape, expected, _) = &self.tensors[name];
        let row: usize = shape[1..].iter().product();
        let actual = actual.into_data().convert::<f32>().to_vec::<f32>().unwrap();
        assert_eq!(actual.len(), row, "{name}: row 0 size");
        let max = actual.iter().zip(&expected[..row]).map(|(a, e)| (a - e).abs()).fold(0.0f32, f32::max);
        assert!(max <= TOLERANCE, "{name} row 0 alone: max abs difference {max:e} > {TOLERANCE:e}");
    }
}

pub fn device() -> <TestBackend as burn::tensor::backend::BackendTypes>::Device {
    Default::default()
}


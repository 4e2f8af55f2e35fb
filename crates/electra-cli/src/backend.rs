//! The compute backend, chosen at build time by a Cargo feature. Only the binary picks one.

#[cfg(feature = "flex")]
pub type Backend = burn::backend::Flex;
#[cfg(all(feature = "ndarray", not(feature = "flex")))]
pub type Backend = burn::backend::NdArray;
#[cfg(all(feature = "wgpu", not(any(feature = "flex", feature = "ndarray"))))]
pub type Backend = burn::backend::Wgpu;
#[cfg(all(feature = "cuda", not(any(feature = "flex", feature = "ndarray", feature = "wgpu"))))]
pub type Backend = burn::backend::Cuda;

#[cfg(not(any(feature = "flex", feature = "ndarray", feature = "wgpu", feature = "cuda")))]
compile_error!("enable one backend feature: flex, ndarray, wgpu or cuda");

/// The backend with automatic differentiation, for training.
pub type AutodiffBackend = burn::backend::Autodiff<Backend>;

/// The backend's name, for logs and summaries.
pub const NAME: &str = if cfg!(feature = "flex") {
    "flex"
} else if cfg!(feature = "ndarray") {
    "ndarray"
} else if cfg!(feature = "wgpu") {
    "wgpu"
} else {
    "cuda"
};

/// Rows per batch chunk when a run's config leaves `chunk_size` unset: chunks of 8 sequences
/// on the CPU backends, which run element-wise work on one thread per chunk (all cores busy,
/// smaller intermediates); none on the GPU backends, where a whole batch fills the device
/// (docs/performance.md, "Batch chunks").
pub const DEFAULT_CHUNK: usize = if cfg!(any(feature = "flex", feature = "ndarray")) { 8 } else { 0 };

/// The default device of the backend.
pub fn device() -> <Backend as burn::tensor::backend::BackendTypes>::Device {
    Default::default()
}

//! The compute backend, chosen at build time by a Cargo feature. Only the binary picks one.

#[cfg(feature = "flex")]
pub type Backend = burn::backend::Flex;
#[cfg(all(feature = "ndarray", not(feature = "flex")))]
pub type Backend = burn::backend::NdArray;
#[cfg(all(feature = "wgpu-plain", not(any(feature = "flex", feature = "ndarray"))))]
pub type Backend = burn::backend::Wgpu;
#[cfg(all(feature = "cuda-plain", not(any(feature = "flex", feature = "ndarray", feature = "wgpu-plain"))))]
pub type Backend = burn::backend::Cuda;

#[cfg(not(any(feature = "flex", feature = "ndarray", feature = "wgpu-plain", feature = "cuda-plain")))]
compile_error!("enable one backend feature: flex, ndarray, wgpu or cuda");

/// The GPU runtime of the backend (cubecl's), when it is a GPU one (`gpu_backend`: set by
/// build.rs when the backend is WGPU or CUDA).
#[cfg(all(gpu_backend, feature = "wgpu-plain"))]
type GpuRuntime = burn::cubecl::wgpu::WgpuRuntime;
#[cfg(all(gpu_backend, not(feature = "wgpu-plain")))]
type GpuRuntime = burn::cubecl::cuda::CudaRuntime;

/// Whether the backend is a GPU one (WGPU or CUDA).
pub const GPU: bool = cfg!(gpu_backend);

/// The backend with automatic differentiation, for training.
pub type AutodiffBackend = burn::backend::Autodiff<Backend>;

/// The backend's name, for logs and summaries.
pub const NAME: &str = if cfg!(feature = "flex") {
    "flex"
} else if cfg!(feature = "ndarray") {
    "ndarray"
} else if cfg!(feature = "wgpu-plain") {
    "wgpu"
} else {
    "cuda"
};

/// Rows per batch chunk when a run's config leaves `chunk_size` unset: chunks of 8 sequences
/// on the CPU backends, which run element-wise work on one thread per chunk (all cores busy,
/// smaller intermediates); none on the GPU backends, where a whole batch fills the device
/// (docs/performance.md, "Batch chunks").
pub const DEFAULT_CHUNK: usize = if cfg!(any(feature = "flex", feature = "ndarray")) { 8 } else { 0 };

/// Refuses a precision this backend cannot run, before any work: ndarray has no half types;
/// WGPU's shaders (WGSL) have no bfloat16 (f16 runs where the GPU has `shader-f16`).
pub fn check_precision(precision: electra_model::Precision) -> anyhow::Result<()> {
    use electra_model::Precision;
    match (NAME, precision) {
        ("ndarray", Precision::Bf16 | Precision::F16) => {
            anyhow::bail!("--precision {precision}: the ndarray backend has no half-precision types; use flex, cuda or wgpu (f16)")
        }
        ("wgpu", Precision::Bf16) => {
            anyhow::bail!("--precision bf16: the WGPU backend's shaders (WGSL) have no bfloat16; use f16, or the CUDA backend for bf16")
        }
        _ => Ok(()),
    }
}

/// The default device of the backend.
pub fn device() -> <Backend as burn::tensor::backend::BackendTypes>::Device {
    Default::default()
}

/// The environment variable that names the autotune cache directory.
pub const TUNE_CACHE_ENV: &str = "ELECTRA_TUNE_CACHE";
/// The environment variable that makes a GPU build log every kernel launch to a file (one
/// `Executing <kernel>` line each; `electra bench` sets it for its workers).
pub const LAUNCH_LOG_ENV: &str = "ELECTRA_LAUNCH_LOG";

/// Where a GPU build keeps its autotune results, so that a kernel is tuned once per machine
/// and not once per run: `$ELECTRA_TUNE_CACHE`, else `$XDG_CACHE_HOME/electra/autotune`, else
/// `~/.cache/electra/autotune` (`None` without a home directory: the runtime's default, the
/// `target/` directory nearest the working directory).
pub fn tune_cache() -> Option<std::path::PathBuf> {
    let var = |name: &str| std::env::var_os(name).filter(|v| !v.is_empty()).map(std::path::PathBuf::from);
    var(TUNE_CACHE_ENV)
        .or_else(|| var("XDG_CACHE_HOME").map(|d| d.join("electra").join("autotune")))
        .or_else(|| var("HOME").map(|d| d.join(".cache").join("electra").join("autotune")))
}

/// Configures the GPU runtime before its first use: the settings of a `cubecl.toml` (or the
/// `[cubecl]` section of a `burn.toml`) in the working directory or above and of cubecl's
/// environment variables, then the autotune cache in [`tune_cache`] and, with
/// `$ELECTRA_LAUNCH_LOG`, a kernel-launch log. Nothing to do on the CPU backends.
pub fn configure_runtime() {
    #[cfg(gpu_backend)]
    gpu::configure();
}

/// The device memory the GPU runtime holds (reserved by its pools, which keep what they
/// allocated: the high-water mark of a steady loop), in MiB; `None` on the CPU backends.
pub fn gpu_reserved_mib(device: &<Backend as burn::tensor::backend::BackendTypes>::Device) -> Option<f64> {
    #[cfg(gpu_backend)]
    return gpu::reserved_mib(device);
    #[cfg(not(gpu_backend))]
    {
        let _ = device;
        None
    }
}

#[cfg(gpu_backend)]
mod gpu {
    use burn::cubecl::Runtime;
    use burn::cubecl::config::{CubeClRuntimeConfig, RuntimeConfig};

    pub(super) fn configure() {
        let mut config = CubeClRuntimeConfig::from_current_dir().override_from_env();
        if let Some(dir) = super::tune_cache() {
            config.autotune.cache = burn::cubecl::config::cache::CacheConfig::File(dir);
        }
        if let Some(log) = std::env::var_os(super::LAUNCH_LOG_ENV) {
            config.profiling.logger.level = burn::cubecl::config::profiling::ProfilingLogLevel::Minimal;
            config.profiling.logger.file = Some(log.into());
        }
        CubeClRuntimeConfig::set(config);
    }

    pub(super) fn reserved_mib(device: &<super::Backend as burn::tensor::backend::BackendTypes>::Device) -> Option<f64> {
        let usage = super::GpuRuntime::client(device).memory_usage().ok()?;
        Some(usage.bytes_reserved as f64 / (1024.0 * 1024.0))
    }
}

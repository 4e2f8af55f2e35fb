//! `cfg(gpu_backend)`: the backend the features pick is WGPU or CUDA (a CPU backend feature,
//! `flex` or `ndarray`, wins when both kinds are enabled; `src/backend.rs`).

fn main() {
    println!("cargo::rustc-check-cfg=cfg(gpu_backend)");
    let on = |f: &str| std::env::var_os(format!("CARGO_FEATURE_{f}")).is_some();
    if (on("WGPU_PLAIN") || on("CUDA_PLAIN")) && !(on("FLEX") || on("NDARRAY")) {
        println!("cargo::rustc-cfg=gpu_backend");
    }
}

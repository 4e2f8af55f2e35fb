//! Mixed precision ([`electra_model::autocast`]): the models' forward with their matrix
//! multiplies in bf16 or f16 against HuggingFace's `f32` outputs (the fixtures of
//! `scripts/make_model_fixtures.py`), within the tolerance documented in
//! `docs/user-guide.md` ("Mixed precision"): the relative RMS error of every output is at most
//! 2% in bf16 (8 significant bits) and 0.3% in f16 (11 bits). Each output must also differ from
//! the `f32` one, so the half-precision path is really taken. CI runs this file on flex and on
//! WGPU (lavapipe, f16 only: WGSL has no bfloat16).

use burn::prelude::*;
use electra_model::hf;
use electra_model::{Precision, autocast};

mod common;
use common::{Io, TestBackend, device, fixtures};

/// The largest relative RMS error `||ours - theirs|| / ||theirs||` allowed in `precision`.
fn tolerance(precision: Precision) -> f64 {
    match precision {
        Precision::Bf16 => 2e-2,
        Precision::F16 => 3e-3,
        Precision::F32 => 1e-5,
    }
}

/// The relative RMS error of `actual` against the fixture tensor `name`.
fn relative_error<const D: usize>(io: &Io, name: &str, actual: Tensor<TestBackend, D>) -> f64 {
    let (shape, expected, _) = &io.tensors[name];
    assert_eq!(&actual.dims().to_vec(), shape, "{name}: shape");
    let actual = actual.into_data().convert::<f32>().to_vec::<f32>().unwrap();
    let (mut diff, mut norm) = (0.0f64, 0.0f64);
    for (a, e) in actual.iter().zip(expected) {
        assert!(a.is_finite(), "{name}: non-finite output");
        diff += f64::from(a - e).powi(2);
        norm += f64::from(*e).powi(2);
    }
    (diff / norm.max(1e-30)).sqrt()
}

#[track_caller]
fn check<const D: usize>(io: &Io, name: &str, precision: Precision, out: impl Fn() -> Tensor<TestBackend, D>) {
    let full = relative_error(io, name, out());
    let half = relative_error(io, name, autocast(precision, &out));
    eprintln!("{name} in {precision}: relative RMS error {half:.2e} (f32: {full:.2e})");
    assert!(half <= tolerance(precision), "{name} in {precision}: relative RMS error {half:e} > {:e}", tolerance(precision));
    assert!(half > 10.0 * full.max(1e-7), "{name} in {precision}: as exact as f32 ({half:e}): no half-precision product ran");
}

fn check_case(case: &str, precision: Precision) {
    let io = Io::load(case);
    let [ids, types, mask] = io.inputs();
    let disc = hf::load_discriminator::<TestBackend>(&fixtures().join(case).join("disc"), &device()).unwrap();
    check(&io, "disc.last_hidden_state", precision, || disc.forward(ids.clone(), types.clone(), mask.clone()).hidden);
    check(&io, "disc.logits", precision, || disc.forward(ids.clone(), types.clone(), mask.clone()).logits);
    let generator = hf::load_generator::<TestBackend>(&fixtures().join(case).join("gen"), &device()).unwrap();
    check(&io, "gen.logits", precision, || generator.forward(ids.clone(), types.clone(), mask.clone()));
}

#[test]
#[cfg_attr(feature = "test-wgpu", ignore = "WGPU's shaders (WGSL) have no bfloat16; bf16 runs on flex and CUDA")]
fn a_bf16_forward_tracks_transformers_f32() {
    check_case("electra_deep", Precision::Bf16);
    check_case("electra_proj", Precision::Bf16);
}

#[test]
fn an_f16_forward_tracks_transformers_f32() {
    check_case("electra_deep", Precision::F16);
    check_case("electra_proj", Precision::F16);
}

#[test]
fn outside_autocast_nothing_changes() {
    let io = Io::load("electra_deep");
    let [ids, types, mask] = io.inputs();
    let disc = hf::load_discriminator::<TestBackend>(&fixtures().join("electra_deep/disc"), &device()).unwrap();
    let run = || disc.forward(ids.clone(), types.clone(), mask.clone()).logits.into_data().to_vec::<f32>().unwrap();
    let before = run();
    let _ = autocast(Precision::F16, run);
    assert_eq!(autocast(Precision::F32, run), before, "f32 autocast must compute exactly as without it");
    assert_eq!(run(), before, "autocast must not outlive its closure");
}

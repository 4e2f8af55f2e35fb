//! Parity with HuggingFace `transformers`: the fixtures under `tests/fixtures/` were written by
//! `scripts/make_model_fixtures.py` (random HF models and their outputs on a padded two-segment
//! batch). Every output must match to `TOLERANCE`, and import -> export -> import must give
//! bit-identical tensors equal to the HF file. `half_precision`: the same outputs with the
//! matrix multiplies in bf16 or f16, within a documented tolerance.

use std::collections::HashMap;
use std::path::Path;

use electra_model::hf::{self, TensorMap};
use electra_model::{Discriminator, ElectraConfig, Error, PreTrainingConfig};

mod common;
use common::{Io, TestBackend, device, fixtures};

fn check_discriminator(case: &str, dir: &str) {
    let io = Io::load(case);
    let model = hf::load_discriminator::<TestBackend>(&fixtures().join(case).join(dir), &device()).unwrap();
    let [ids, types, mask] = io.inputs();
    let embedded = model.electra.embeddings.forward(ids.clone(), types.clone());
    let embedded = match &model.electra.encoder.embeddings_project {
        Some(p) => p.forward(embedded),
        None => embedded,
    };
    if io.tensors.contains_key(&format!("{dir}.embeddings")) {
        io.check(&format!("{dir}.embeddings"), embedded);
    }
    let out = model.forward(ids.clone(), types.clone(), mask.clone());
    if io.tensors.contains_key(&format!("{dir}.last_hidden_state")) {
        io.check(&format!("{dir}.last_hidden_state"), out.hidden);
    }
    io.check(&format!("{dir}.logits"), out.logits);
    // Row 0 is full length: alone it is a batch without padding, which skips the mask bias.
    let alone = model.forward(ids.slice(0..1), types.slice(0..1), mask.slice(0..1));
    io.check_row0(&format!("{dir}.logits"), alone.logits);
}

fn check_generator(case: &str, dir: &str) {
    let io = Io::load(case);
    let model = hf::load_generator::<TestBackend>(&fixtures().join(case).join(dir), &device()).unwrap();
    let [ids, types, mask] = io.inputs();
    let hidden = model.electra.forward(ids.clone(), types.clone(), mask.clone());
    io.check(&format!("{dir}.last_hidden_state"), hidden);
    io.check(&format!("{dir}.logits"), model.forward(ids, types, mask));
}

fn check_encoder(case: &str, dir: &str) {
    let io = Io::load(case);
    let model = hf::load_encoder::<TestBackend>(&fixtures().join(case).join(dir), &device()).unwrap();
    let [ids, types, mask] = io.inputs();
    io.check(&format!("{dir}.last_hidden_state"), model.forward(ids, types, mask));
}

#[test]
fn electra_with_embedding_projection_matches_transformers() {
    check_discriminator("electra_proj", "disc");
    check_generator("electra_proj", "gen");
    check_encoder("electra_proj", "base");
}

#[test]
fn deep_multi_head_electra_matches_transformers() {
    check_discriminator("electra_deep", "disc");
    check_generator("electra_deep", "gen");
}

/// Needs the `pytorch` feature (on by default); without it, `hf`'s unit test checks the refusal.
#[cfg(feature = "pytorch")]
#[test]
fn pytorch_bin_checkpoint_matches_transformers() {
    check_discriminator("electra_deep", "disc_bin");
}

#[test]
fn bert_matches_transformers() {
    check_generator("bert", "mlm");
    check_encoder("bert", "base");
}

#[test]
fn a_discriminator_directory_loads_as_a_bare_encoder() {
    // The encoder part of ElectraForPreTraining is the same network as ElectraModel.
    let io = Io::load("electra_proj");
    let model = hf::load_encoder::<TestBackend>(&fixtures().join("electra_proj/disc"), &device()).unwrap();
    let [ids, types, mask] = io.inputs();
    io.check("disc.last_hidden_state", model.forward(ids, types, mask));
}

/// Every tensor of the original HF file, by name.
fn file_tensors(dir: &Path) -> HashMap<String, (Vec<usize>, Vec<f32>)> {
    let bytes = std::fs::read(dir.join("model.safetensors")).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    st.tensors()
        .into_iter()
        .map(|(n, v)| {
            let values = v.data().chunks_exact(4).map(|b| f32::from_le_bytes(b.try_into().unwrap())).collect();
            (n, (v.shape().to_vec(), values))
        })
        .collect()
}

fn assert_round_trip(dir: &Path, kind: &str) {
    let out = tempfile::tempdir().unwrap();
    match kind {
        "disc" => {
            let m = hf::load_discriminator::<TestBackend>(dir, &device()).unwrap();
            hf::save_discriminator(&m, out.path()).unwrap();
            let again = hf::load_discriminator::<TestBackend>(out.path(), &device()).unwrap();
            assert_eq!(hf::collect_discriminator(&m).names(), hf::collect_discriminator(&again).names());
        }
        "gen" => {
            let m = hf::load_generator::<TestBackend>(dir, &device()).unwrap();
            hf::save_generator(&m, out.path()).unwrap();
            hf::load_generator::<TestBackend>(out.path(), &device()).unwrap();
        }
        _ => {
            let m = hf::load_encoder::<TestBackend>(dir, &device()).unwrap();
            hf::save_encoder(&m, out.path()).unwrap();
            hf::load_encoder::<TestBackend>(out.path(), &device()).unwrap();
        }
    }
    // The exported file holds exactly the tensors of the HF file, bit for bit.
    let original = file_tensors(dir);
    let exported = file_tensors(out.path());
    let mut a: Vec<_> = original.keys().collect();
    let mut b: Vec<_> = exported.keys().collect();
    a.sort();
    b.sort();
    assert_eq!(a, b, "{}: tensor names differ after export", dir.display());
    for (name, (shape, values)) in &original {
        let (s2, v2) = &exported[name];
        assert_eq!(shape, s2, "{name}: shape");
        let same = values.iter().zip(v2).all(|(x, y)| x.to_bits() == y.to_bits());
        assert!(same, "{name}: values differ after export");
    }
    // And the config reads back as the same architecture.
    let c1 = hf::load_config(dir).unwrap();
    let c2 = hf::load_config(out.path()).unwrap();
    assert_eq!(
        (c1.hidden_size, c1.embedding_size(), c1.num_hidden_layers, c1.vocab_size, c1.model_type.clone()),
        (c2.hidden_size, c2.embedding_size(), c2.num_hidden_layers, c2.vocab_size, c2.model_type.clone())
    );
}

#[test]
fn import_export_reimport_is_bit_identical() {
    let f = fixtures();
    assert_round_trip(&f.join("electra_proj/disc"), "disc");
    assert_round_trip(&f.join("electra_proj/gen"), "gen");
    assert_round_trip(&f.join("electra_proj/base"), "base");
    assert_round_trip(&f.join("electra_deep/disc"), "disc");
    assert_round_trip(&f.join("electra_deep/gen"), "gen");
    assert_round_trip(&f.join("bert/mlm"), "gen");
    assert_round_trip(&f.join("bert/base"), "base");
}

/// Copies a fixture directory, rewriting its weights with `edit`.
fn corrupted_copy(
    src: &Path,
    edit: impl FnOnce(&mut HashMap<String, (Vec<usize>, Vec<f32>)>),
) -> tempfile::TempDir {
    let out = tempfile::tempdir().unwrap();
    std::fs::copy(src.join("config.json"), out.path().join("config.json")).unwrap();
    let mut tensors = file_tensors(src);
    edit(&mut tensors);
    let bytes: Vec<(String, Vec<usize>, Vec<u8>)> = tensors
        .into_iter()
        .map(|(n, (s, v))| (n, s, v.iter().flat_map(|x| x.to_le_bytes()).collect()))
        .collect();
    let views: Vec<_> = bytes
        .iter()
        .map(|(n, s, b)| (n.clone(), safetensors::tensor::TensorView::new(safetensors::Dtype::F32, s.clone(), b).unwrap()))
        .collect();
    let data = safetensors::serialize(views, None).unwrap();
    std::fs::write(out.path().join("model.safetensors"), data).unwrap();
    out
}

#[test]
fn a_missing_tensor_is_an_error_naming_it() {
    let src = fixtures().join("electra_proj/disc");
    let dir = corrupted_copy(&src, |t| {
        t.remove("electra.encoder.layer.1.attention.output.LayerNorm.bias");
    });
    let err = hf::load_discriminator::<TestBackend>(dir.path(), &device()).unwrap_err();
    assert!(matches!(err, Error::MissingTensor { .. }), "{err}");
    let msg = err.to_string();
    assert!(msg.contains("electra.encoder.layer.1.attention.output.LayerNorm.bias"), "{msg}");
    assert!(msg.contains("[32]"), "{msg}");
}

#[test]
fn a_misshaped_tensor_is_an_error_naming_both_shapes() {
    let src = fixtures().join("electra_proj/disc");
    let dir = corrupted_copy(&src, |t| {
        let e = t.get_mut("electra.embeddings_project.weight").unwrap();
        e.0 = vec![16, 32]; // transposed
    });
    let msg = hf::load_discriminator::<TestBackend>(dir.path(), &device()).unwrap_err().to_string();
    assert!(msg.contains("electra.embeddings_project.weight"), "{msg}");
    assert!(msg.contains("[16, 32]") && msg.contains("[32, 16]"), "{msg}");
}

#[test]
fn a_generator_directory_is_not_a_discriminator() {
    let err = hf::load_discriminator::<TestBackend>(&fixtures().join("electra_proj/gen"), &device()).unwrap_err();
    assert!(err.to_string().contains("discriminator_predictions.dense.weight"), "{err}");
}

#[test]
fn a_directory_without_weights_or_config_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let err = hf::load_encoder::<TestBackend>(dir.path(), &device()).unwrap_err();
    assert!(err.to_string().contains("config.json"), "{err}");
    std::fs::copy(fixtures().join("bert/base/config.json"), dir.path().join("config.json")).unwrap();
    let err = hf::load_encoder::<TestBackend>(dir.path(), &device()).unwrap_err();
    assert!(matches!(err, Error::NoWeights(_)), "{err}");
    std::fs::write(dir.path().join("model.safetensors"), b"not a safetensors file").unwrap();
    let err = hf::load_encoder::<TestBackend>(dir.path(), &device()).unwrap_err();
    assert!(err.to_string().contains("not a safetensors file"), "{err}");
}

#[test]
fn an_invalid_config_is_rejected_with_the_file_name() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("config.json"),
        r#"{"model_type":"electra","vocab_size":10,"hidden_size":30,"num_hidden_layers":1,"num_attention_heads":4,"intermediate_size":8}"#,
    )
    .unwrap();
    let msg = hf::load_encoder::<TestBackend>(dir.path(), &device()).unwrap_err().to_string();
    assert!(msg.contains("config.json") && msg.contains("not divisible"), "{msg}");
}

#[test]
fn tensor_map_detects_the_model_prefix() {
    let f = fixtures();
    assert_eq!(TensorMap::read_dir(&f.join("electra_proj/disc")).unwrap().prefix(), "electra");
    assert_eq!(TensorMap::read_dir(&f.join("bert/mlm")).unwrap().prefix(), "bert");
    assert_eq!(TensorMap::read_dir(&f.join("bert/base")).unwrap().prefix(), "");
}

#[test]
fn pretraining_module_splits_into_networks_that_share_embeddings() {
    let mut disc = ElectraConfig::small();
    disc.vocab_size = 50;
    disc.num_hidden_layers = 2;
    disc.hidden_size = 64;
    disc.num_attention_heads = 2;
    disc.intermediate_size = 128;
    disc.embedding_size = Some(32);
    let config = PreTrainingConfig::new(disc, 0.5).unwrap();
    let model = electra_model::ElectraPreTraining::<TestBackend>::init(&config, 3, &device()).unwrap();
    let (generator, discriminator) = model.to_parts();
    let g = generator.electra.embeddings.word_table().into_data();
    let d = discriminator.electra.embeddings.word_table().into_data();
    assert_eq!(g, d);
    assert_eq!(generator.config().hidden_size, 32);
    // Same seed, same weights.
    let again = electra_model::ElectraPreTraining::<TestBackend>::init(&config, 3, &device()).unwrap();
    assert_eq!(again.embeddings.word_table().into_data(), model.embeddings.word_table().into_data());
    let _: &Discriminator<TestBackend> = &discriminator;
}

/// Mixed precision ([`electra_model::autocast`]): the models' forward with their matrix
/// multiplies in bf16 or f16 against HuggingFace's `f32` outputs (the fixtures of
/// `scripts/make_model_fixtures.py`), within the tolerance documented in
/// `docs/user-guide.md` ("Mixed precision"): the relative RMS error of every output is at most
/// 2% in bf16 (8 significant bits) and 0.3% in f16 (11 bits). Each output must also differ from
/// the `f32` one, so the half-precision path is really taken. CI runs these tests on flex and on
/// WGPU (lavapipe, f16 only: WGSL has no bfloat16).
mod half_precision {
    use burn::prelude::*;
    use electra_model::hf;
    use electra_model::{Precision, autocast};

    use super::common::{Io, TestBackend, device, fixtures};

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
}

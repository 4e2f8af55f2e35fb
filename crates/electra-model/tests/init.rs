//! Continued pre-training's starting points: every supported checkpoint kind loads into the
//! pre-training module, and before any step the discriminator's encoder reproduces the source
//! checkpoint's outputs as computed by HuggingFace `transformers` (the fixtures of
//! `scripts/make_model_fixtures.py`, as in `parity.rs`).

use electra_model::init::{InitKind, InitSource};
use electra_model::{ElectraPreTraining, Error};

mod common;
use common::{Io, TestBackend, device, fixtures};

/// The discriminator encoder's final hidden states (and logits) of `model` on the case's batch
/// equal the reference's `{dir}.last_hidden_state` (and `{dir}.logits` when the head came from
/// the checkpoint).
fn check_discriminator(model: &ElectraPreTraining<TestBackend>, io: &Io, dir: &str, with_logits: bool) {
    let [ids, types, mask] = io.inputs();
    let hidden = model.discriminator.forward(model.embeddings.forward(ids.clone(), types.clone()), mask.clone());
    io.check(&format!("{dir}.last_hidden_state"), hidden);
    if with_logits {
        // The padding flag as the reference's mask has it (the padded and unpadded paths agree).
        let padded = mask.clone().min().into_scalar() == 0;
        io.check(&format!("{dir}.logits"), model.discriminator_logits(ids, types, mask, padded));
    }
}

/// The generator's encoder, given the reference's embedding output, reproduces `{dir}`'s final
/// hidden states (its own embeddings are replaced by the shared ones, so the whole network is
/// compared from the embedding output on; the reference's is taken after `embeddings_project`).
fn check_generator_encoder(model: &ElectraPreTraining<TestBackend>, io: &Io, dir: &str) {
    let mask = io.ints("attention_mask");
    let mut layers = model.generator.clone();
    layers.embeddings_project = None;
    let hidden = layers.forward(io.floats(&format!("{dir}.embeddings")), mask);
    io.check(&format!("{dir}.last_hidden_state"), hidden);
}

fn load(source: &InitSource) -> (ElectraPreTraining<TestBackend>, InitKind) {
    source.load::<TestBackend>(0.5, 7, &device()).unwrap_or_else(|e| panic!("{e}"))
}

/// A run export: `discriminator/` and `generator/` copied from fixture directories.
fn run_export(disc: &str, generator: &str) -> tempfile::TempDir {
    let out = tempfile::tempdir().unwrap();
    for (from, to) in [(disc, "discriminator"), (generator, "generator")] {
        let dst = out.path().join(to);
        std::fs::create_dir_all(&dst).unwrap();
        for entry in std::fs::read_dir(fixtures().join(from)).unwrap() {
            let entry = entry.unwrap();
            std::fs::copy(entry.path(), dst.join(entry.file_name())).unwrap();
        }
    }
    out
}

#[test]
fn a_run_export_loads_both_networks() {
    let export = run_export("electra_proj/disc", "electra_proj/gen");
    let source = InitSource::resolve(export.path(), None).unwrap();
    assert_eq!(source.discriminator, export.path().join("discriminator"));
    assert_eq!(source.generator.as_deref(), Some(export.path().join("generator").as_path()));
    let (model, kind) = load(&source);
    assert_eq!(kind, InitKind::Discriminator);
    let io = Io::load("electra_proj");
    check_discriminator(&model, &io, "disc", true);
    check_generator_encoder(&model, &io, "gen");
    // The generator is the checkpoint's (hidden 16), not one derived at half the width (16 too,
    // so check the depth-independent head width instead: the checkpoint's intermediate size).
    assert_eq!(model.generator_config.intermediate_size, 32);
}

#[test]
fn a_discriminator_with_a_separate_generator_directory_loads_both() {
    let source =
        InitSource::resolve(&fixtures().join("electra_deep/disc"), Some(&fixtures().join("electra_deep/gen"))).unwrap();
    let (model, kind) = load(&source);
    assert_eq!(kind, InitKind::Discriminator);
    let io = Io::load("electra_deep");
    check_discriminator(&model, &io, "disc", true);
    check_generator_encoder(&model, &io, "gen");
}

#[test]
fn a_discriminator_alone_gets_a_derived_generator_sharing_its_embeddings() {
    let source = InitSource::resolve(&fixtures().join("electra_deep/disc"), None).unwrap();
    assert_eq!(source.generator, None);
    let (model, kind) = load(&source);
    assert_eq!(kind, InitKind::Discriminator);
    check_discriminator(&model, &Io::load("electra_deep"), "disc", true);
    let (d, g) = (&model.discriminator_config, &model.generator_config);
    assert_eq!(g.hidden_size * 2, d.hidden_size, "half the width (generator_size 0.5)");
    assert_eq!(g.embedding_size(), d.embedding_size(), "shares the embeddings");
    assert_eq!(g.num_hidden_layers, d.num_hidden_layers);
    // The derived generator exports with the checkpoint's embeddings.
    let (generator, _) = model.to_parts();
    assert_eq!(
        generator.electra.embeddings.word_table().into_data(),
        model.embeddings.word_table().into_data()
    );
}

#[test]
fn an_electra_encoder_alone_gets_a_fresh_seeded_head() {
    let source = InitSource::resolve(&fixtures().join("electra_proj/base"), None).unwrap();
    let (model, kind) = load(&source);
    assert_eq!(kind, InitKind::Encoder);
    check_discriminator(&model, &Io::load("electra_proj"), "base", false);
    // Fresh parts come from the seed: the same seed gives the same head, another seed another.
    let head = |seed| {
        let (m, _) = source.load::<TestBackend>(0.5, seed, &device()).unwrap();
        m.discriminator_head.dense.weight.val().into_data()
    };
    assert_eq!(head(7), model.discriminator_head.dense.weight.val().into_data());
    assert_ne!(head(8), head(7));
}

#[test]
fn bert_encoders_load_as_electra_discriminators() {
    for (dir, name) in [("bert/base", "base"), ("bert/mlm", "mlm")] {
        let source = InitSource::resolve(&fixtures().join(dir), None).unwrap();
        let (model, kind) = load(&source);
        assert_eq!(kind, InitKind::Encoder, "{dir}");
        check_discriminator(&model, &Io::load("bert"), name, false);
        // Exported in the ELECTRA layout, which can hold the narrower derived generator.
        assert_eq!(model.discriminator_config.model_type, "electra", "{dir}");
        assert_eq!(model.generator_config.model_type, "electra", "{dir}");
        assert!(model.generator_config.has_projection(), "{dir}: generator narrower than the embeddings");
    }
}

#[test]
fn a_directory_that_is_no_model_is_refused_by_name() {
    let empty = tempfile::tempdir().unwrap();
    let err = InitSource::resolve(empty.path(), None).unwrap_err();
    assert!(matches!(err, Error::NotAModel(_)), "{err}");
    assert!(err.to_string().contains(&empty.path().display().to_string()), "{err}");
    let err = InitSource::resolve(&fixtures().join("electra_deep/disc"), Some(empty.path())).unwrap_err();
    assert!(matches!(err, Error::NotAModel(ref p) if p == empty.path()), "{err}");
}

#[test]
fn a_config_without_weights_is_refused_by_name() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(fixtures().join("bert/base/config.json"), dir.path().join("config.json")).unwrap();
    let source = InitSource::resolve(dir.path(), None).unwrap();
    let err = source.load::<TestBackend>(0.5, 1, &device()).unwrap_err();
    assert!(matches!(err, Error::NoWeights(_)), "{err}");
}

#[test]
fn a_generator_that_cannot_share_the_embeddings_is_refused_naming_both_configs() {
    // electra_proj has 100 ids and embedding width 16; electra_deep's generator 112 and 32.
    let source =
        InitSource::resolve(&fixtures().join("electra_proj/disc"), Some(&fixtures().join("electra_deep/gen"))).unwrap();
    let msg = source.networks(0.25).unwrap_err().to_string();
    assert!(msg.contains("electra_proj/disc/config.json") && msg.contains("electra_deep/gen/config.json"), "{msg}");
    assert!(msg.contains("vocab_size"), "{msg}");
}

#[test]
fn a_config_that_disagrees_with_the_tensors_is_refused_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let src = fixtures().join("electra_proj/base");
    std::fs::copy(src.join("model.safetensors"), dir.path().join("model.safetensors")).unwrap();
    let config = std::fs::read_to_string(src.join("config.json")).unwrap();
    let config = config.replace("\"intermediate_size\": 64", "\"intermediate_size\": 48");
    assert!(config.contains("48"), "the fixture's config names intermediate_size 64");
    std::fs::write(dir.path().join("config.json"), config).unwrap();
    let msg = InitSource::resolve(dir.path(), None).unwrap().load::<TestBackend>(0.5, 1, &device()).unwrap_err().to_string();
    assert!(msg.contains("model.safetensors") && msg.contains("intermediate"), "{msg}");
}

//! Task heads against HuggingFace `transformers` (fixtures by `scripts/make_finetune_fixtures.py`),
//! export round trips, layer-wise learning rates and the fine-tuning loop on a toy task.

#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};

use burn::backend::{Autodiff, Flex};
use burn::module::AutodiffModule;
use burn::optim::{GradientsParams, Optimizer};
use burn::prelude::*;
use burn::tensor::TensorData;
use electra_finetune::optim::{DepthRule, lr_scale, step_layerwise};
use electra_finetune::run::{Outputs, Scores, Silent};
use electra_finetune::{Feature, FinetuneConfig, HeadKind, HeadStyle, Schedule, Target, TaskModel, finetune, predict};
use electra_model::{ElectraConfig, ElectraModel};
use electra_tokenizer::Cancel;
use electra_train::optim::ElectraAdam;
use safetensors::SafeTensors;

type B = Flex;
type AB = Autodiff<Flex>;
const TOL: f32 = 1e-4;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/heads")
}

struct Io {
    bytes: Vec<u8>,
}

impl Io {
    fn load() -> Self {
        Self { bytes: std::fs::read(fixtures().join("io.safetensors")).unwrap() }
    }
    fn tensor(&self, name: &str) -> (Vec<usize>, Vec<u8>, safetensors::Dtype) {
        let st = SafeTensors::deserialize(&self.bytes).unwrap();
        let t = st.tensor(name).unwrap();
        (t.shape().to_vec(), t.data().to_vec(), t.dtype())
    }
    fn ints(&self, name: &str) -> Tensor<B, 2, Int> {
        let (shape, data, dtype) = self.tensor(name);
        assert_eq!(dtype, safetensors::Dtype::I64);
        let v: Vec<i64> = data.chunks_exact(8).map(|c| i64::from_le_bytes(c.try_into().unwrap())).collect();
        Tensor::from_data(TensorData::new(v, [shape[0], shape[1]]), &Default::default())
    }
    fn floats(&self, name: &str) -> Vec<f32> {
        let (_, data, dtype) = self.tensor(name);
        assert_eq!(dtype, safetensors::Dtype::F32);
        data.chunks_exact(4).map(|c| f32::from_le_bytes(c.try_into().unwrap())).collect()
    }
    fn inputs(&self) -> (Tensor<B, 2, Int>, Tensor<B, 2, Int>, Tensor<B, 2, Int>) {
        (self.ints("input_ids"), self.ints("token_type_ids"), self.ints("attention_mask"))
    }
}

fn host<const D: usize>(t: Tensor<B, D>) -> Vec<f32> {
    t.into_data().convert::<f32>().to_vec::<f32>().unwrap()
}

fn max_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max)
}

fn sequence_outputs(m: &TaskModel<B>, io: &Io) -> Vec<f32> {
    let (ids, types, mask) = io.inputs();
    host(m.forward_sequence(ids, types, mask))
}

fn token_outputs(m: &TaskModel<B>, io: &Io) -> Vec<f32> {
    let (ids, types, mask) = io.inputs();
    host(m.forward_tokens(ids, types, mask))
}

#[test]
fn sequence_head_matches_transformers() {
    let io = Io::load();
    let m = TaskModel::<B>::load(&fixtures().join("sequence"), &Default::default()).unwrap();
    assert_eq!(m.style(), HeadStyle::Hf);
    assert_eq!(m.kind, HeadKind::Sequence { labels: vec!["LABEL_0".into(), "LABEL_1".into(), "LABEL_2".into()] });
    let d = max_diff(&sequence_outputs(&m, &io), &io.floats("sequence"));
    assert!(d < TOL, "max abs diff {d}");
}

#[test]
fn regression_head_matches_transformers() {
    let io = Io::load();
    let m = TaskModel::<B>::load(&fixtures().join("regression"), &Default::default()).unwrap();
    assert_eq!(m.kind, HeadKind::Regression);
    let d = max_diff(&sequence_outputs(&m, &io), &io.floats("regression"));
    assert!(d < TOL, "max abs diff {d}");
}

#[test]
fn token_head_matches_transformers() {
    let io = Io::load();
    let m = TaskModel::<B>::load(&fixtures().join("token"), &Default::default()).unwrap();
    assert!(matches!(&m.kind, HeadKind::Token { labels } if labels.len() == 5));
    let d = max_diff(&token_outputs(&m, &io), &io.floats("token"));
    assert!(d < TOL, "max abs diff {d}");
}

#[test]
fn span_head_matches_transformers() {
    let io = Io::load();
    let m = TaskModel::<B>::load(&fixtures().join("span"), &Default::default()).unwrap();
    assert_eq!(m.kind, HeadKind::Span);
    let out = token_outputs(&m, &io); // [batch, seq, 2]
    let start: Vec<f32> = out.iter().step_by(2).copied().collect();
    let end: Vec<f32> = out.iter().skip(1).step_by(2).copied().collect();
    let ds = max_diff(&start, &io.floats("span_start"));
    let de = max_diff(&end, &io.floats("span_end"));
    assert!(ds < TOL && de < TOL, "max abs diff {ds} / {de}");
}

#[test]
fn saved_task_models_reload_with_identical_outputs() {
    let io = Io::load();
    let tmp = tempdir("reload");
    for name in ["sequence", "regression", "token", "span"] {
        let m = TaskModel::<B>::load(&fixtures().join(name), &Default::default()).unwrap();
        let out = tmp.join(name);
        m.save(&out).unwrap();
        let back = TaskModel::<B>::load(&out, &Default::default()).unwrap();
        assert_eq!(back.kind, m.kind, "{name}");
        let (a, b) = if matches!(m.kind, HeadKind::Token { .. } | HeadKind::Span) {
            (token_outputs(&m, &io), token_outputs(&back, &io))
        } else {
            (sequence_outputs(&m, &io), sequence_outputs(&back, &io))
        };
        assert_eq!(a, b, "{name}");
    }
}

fn tempdir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("electra-finetune-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn encoder(seed: u64) -> ElectraModel<B> {
    let config = ElectraConfig::from_file(fixtures().join("sequence/config.json")).unwrap();
    ElectraModel::init(&config, seed, &Default::default()).unwrap()
}

#[test]
fn a_linear_head_exports_as_an_equivalent_huggingface_head() {
    let io = Io::load();
    let labels: Vec<String> = ["neg", "neu", "pos"].map(String::from).to_vec();
    let mut m = TaskModel::<B>::new(encoder(3), HeadKind::Sequence { labels: labels.clone() }, HeadStyle::Linear, 5, &Default::default()).unwrap();
    // A non-zero bias so that the bias path of the construction is exercised.
    m.output.bias = Some(burn::module::Param::from_data(TensorData::new(vec![0.3f32, -0.2, 0.1], [3]), &Default::default()));
    let dir = tempdir("linear-export");
    m.save(&dir).unwrap();
    let back = TaskModel::<B>::load(&dir, &Default::default()).unwrap();
    assert_eq!(back.style(), HeadStyle::Hf, "exported as ElectraClassificationHead");
    assert_eq!(back.kind, HeadKind::Sequence { labels });
    let d = max_diff(&sequence_outputs(&m, &io), &sequence_outputs(&back, &io));
    assert!(d < 1e-5, "max abs diff {d}");
    let config: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(dir.join("config.json")).unwrap()).unwrap();
    assert_eq!(config["architectures"][0], "ElectraForSequenceClassification");
    assert_eq!(config["id2label"]["2"], "pos");
    assert_eq!(config["label2id"]["neu"], 1);
}

#[test]
fn a_model_directory_without_a_task_head_is_refused_with_its_name() {
    let dir = tempdir("no-head");
    electra_model::hf::save_encoder(&encoder(1), &dir).unwrap();
    let err = TaskModel::<B>::load(&dir, &Default::default()).unwrap_err().to_string();
    assert!(err.contains("config.json") && err.contains("ElectraModel"), "{err}");
}

#[test]
fn reference_depths_give_the_top_layer_decay_squared() {
    // 12 layers, decay 0.8: head 1, top layer 0.8^2, embeddings 0.8^14.
    assert_eq!(lr_scale(14, 12, 0.8, DepthRule::Reference), 1.0);
    assert!((lr_scale(12, 12, 0.8, DepthRule::Reference) - 0.64).abs() < 1e-12);
    assert!((lr_scale(0, 12, 0.8, DepthRule::Reference) - 0.8f64.powi(14)).abs() < 1e-12);
    assert!((lr_scale(12, 12, 0.8, DepthRule::Contiguous) - 0.8).abs() < 1e-12);
    assert!((lr_scale(0, 12, 0.8, DepthRule::Contiguous) - 0.8f64.powi(13)).abs() < 1e-12);
}

fn host_ad<const D: usize>(t: Tensor<AB, D>) -> Vec<f32> {
    t.into_data().convert::<f32>().to_vec::<f32>().unwrap()
}

#[test]
fn layerwise_steps_move_each_group_by_its_learning_rate() {
    // One Adam step without bias correction moves every parameter with a non-zero gradient by
    // lr_group * 0.1 g / (sqrt(0.001) |g| + eps) ~= 3.16 lr_group (1-D parameters: no decay), so
    // the ratio of the moves of two biases is the ratio of their groups' learning rates.
    let device = Default::default();
    let config = ElectraConfig::from_file(fixtures().join("sequence/config.json")).unwrap();
    let enc = ElectraModel::<AB>::init(&config, 2, &device).unwrap();
    let m = TaskModel::<AB>::new(enc, HeadKind::Sequence { labels: vec!["a".into(), "b".into()] }, HeadStyle::Linear, 1, &device)
        .unwrap()
        .no_grad_dropout();
    let ids = Tensor::<AB, 2, Int>::from_data(TensorData::new(vec![2i64, 7, 9, 3], [1, 4]), &device);
    let types = ids.zeros_like();
    let mask = ids.ones_like();
    let before_emb = host_ad(m.electra.embeddings.layer_norm.beta.as_ref().unwrap().val());
    let before_l1 = host_ad(m.electra.encoder.layers[1].layer_norm.beta.as_ref().unwrap().val());
    let before_head = host_ad(m.output.bias.as_ref().unwrap().val());
    let loss = m.forward_sequence(ids, types, mask).slice([0..1, 0..1]).sum();
    let grads = GradientsParams::from_grads(loss.backward(), &m);
    let rule = ElectraAdam { beta1: 0.9, beta2: 0.999, epsilon: 1e-6, weight_decay: 0.0, bias_correction: false };
    let mut optim = rule.init::<AB, TaskModel<AB>>();
    let m = step_layerwise(&mut optim, m, grads, 1e-3, 0.5, DepthRule::Reference);
    let moved = |a: Vec<f32>, b: Vec<f32>| a.iter().zip(&b).map(|(x, y)| (x - y).abs()).fold(0.0f32, f32::max);
    let d_emb = moved(before_emb, host_ad(m.electra.embeddings.layer_norm.beta.as_ref().unwrap().val()));
    let d_l1 = moved(before_l1, host_ad(m.electra.encoder.layers[1].layer_norm.beta.as_ref().unwrap().val()));
    let d_head = moved(before_head, host_ad(m.output.bias.as_ref().unwrap().val()));
    // 2 layers, reference rule: head depth 4; embeddings 0.5^4, layer 1 (depth 2) 0.5^2.
    assert!((d_head - 3.162e-3).abs() < 2e-5, "head moved {d_head}");
    assert!((d_l1 / d_head - 0.25).abs() < 1e-3, "layer 1 / head = {}", d_l1 / d_head);
    assert!((d_emb / d_head - 0.0625).abs() < 1e-3, "embeddings / head = {}", d_emb / d_head);
    let _ = optim.to_record();
}

#[test]
fn schedule_warms_up_then_decays_to_zero() {
    let c = FinetuneConfig {
        learning_rate: 1e-3,
        warmup_proportion: 0.1,
        schedule: Schedule::WarmupThenDecay,
        ..Default::default()
    };
    assert!((c.learning_rate_at(0, 100) - 1e-4).abs() < 1e-12);
    assert!((c.learning_rate_at(9, 100) - 1e-3).abs() < 1e-12);
    assert!((c.learning_rate_at(10, 100) - 1e-3).abs() < 1e-12);
    assert!((c.learning_rate_at(55, 100) - 0.5e-3).abs() < 1e-12);
    assert!(c.learning_rate_at(99, 100) > 0.0 && c.learning_rate_at(99, 100) < 2e-5);
}

/// Label = whether token 7 occurs in the sequence: learnable from the [CLS] vector in a few
/// epochs, impossible to score well by chance.
fn toy_features(n: usize, seed: u64) -> Vec<Feature> {
    use rand::{Rng, SeedableRng};
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    (0..n)
        .map(|i| {
            let len = rng.random_range(3..9);
            let mut ids = vec![2u32];
            for _ in 0..len {
                ids.push(rng.random_range(8..40));
            }
            let positive = i % 2 == 0;
            if positive {
                let at = rng.random_range(1..ids.len());
                ids[at] = 7;
            }
            ids.push(3);
            let n = ids.len();
            Feature { input_ids: ids, token_type_ids: vec![0; n], target: Some(Target::Class(usize::from(positive))) }
        })
        .collect()
}

fn accuracy(outputs: &Outputs, dev: &[Feature]) -> Scores {
    let correct = outputs
        .iter()
        .zip(dev)
        .filter(|(o, f)| {
            let pred = usize::from(o[1] > o[0]);
            f.target == Some(Target::Class(pred))
        })
        .count();
    vec![("accuracy".into(), correct as f64 / dev.len() as f64)]
}

#[test]
fn finetuning_learns_a_toy_task_and_keeps_the_best_epoch() {
    let device = Default::default();
    let config = ElectraConfig::from_file(fixtures().join("sequence/config.json")).unwrap();
    let mut config = config;
    config.initializer_range = 0.02;
    let enc = ElectraModel::<AB>::init(&config, 4, &device).unwrap();
    let m = TaskModel::<AB>::new(enc, HeadKind::Sequence { labels: vec!["no".into(), "yes".into()] }, HeadStyle::Linear, 1, &device).unwrap();
    let train = toy_features(256, 1);
    let dev = toy_features(64, 2);
    let cfg = FinetuneConfig { learning_rate: 2e-3, epochs: 4, batch_size: 16, layer_decay: 0.9, bias_correction: true, ..Default::default() };
    let out = tempdir("toy-run");
    let score = |o: &Outputs| Ok(accuracy(o, &dev));
    let result = finetune(m, &cfg, &train, &dev, &score, &out, &Silent, &Cancel::new()).unwrap();
    assert_eq!(result.epochs.len(), 4);
    let best = result.best[0].1;
    assert!(best >= 0.85, "best dev accuracy {best}: {:?}", result.epochs);
    let max = result.epochs.iter().map(|e| e.scores[0].1).fold(0.0, f64::max);
    assert_eq!(best, max);
    // The written model is the best epoch's: reloading it reproduces that score.
    let back = TaskModel::<B>::load(&out, &device).unwrap();
    let again = accuracy(&predict(&back, &dev, 16, 0), &dev)[0].1;
    assert_eq!(again, best);
}

trait NoDropout {
    fn no_grad_dropout(self) -> Self;
}

impl NoDropout for TaskModel<AB> {
    /// Dropout off, so that one step's gradient is deterministic.
    fn no_grad_dropout(mut self) -> Self {
        self.dropout = burn::nn::DropoutConfig::new(0.0).init();
        self.electra = {
            let mut e = self.electra;
            e.embeddings.dropout = burn::nn::DropoutConfig::new(0.0).init();
            for l in &mut e.encoder.layers {
                l.attention.attention_dropout = burn::nn::DropoutConfig::new(0.0).init();
                l.attention.dropout = burn::nn::DropoutConfig::new(0.0).init();
                l.dropout = burn::nn::DropoutConfig::new(0.0).init();
            }
            e
        };
        let _ = self.valid();
        self
    }
}

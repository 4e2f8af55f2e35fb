//! BERT-style WordPiece tokenization on top of the `tokenizers` crate.
//!
//! The pipeline is the one BERT and ELECTRA use: [`BertNormalizer`] (clean text, space around
//! CJK characters, optional accent stripping and lower-casing), [`BertPreTokenizer`] (split on
//! whitespace and punctuation) and a [`WordPiece`] model with the `##` continuation prefix,
//! `[UNK]` for unknown words and words longer than 100 characters mapped to `[UNK]`.
//!
//! The five special tokens are registered as "added tokens", as HuggingFace does: their literal
//! text in the input (`"[MASK]"`, case-sensitive) becomes the special id instead of being split.

use std::borrow::Cow;
use std::collections::HashSet;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::Deserialize;
use sha2::{Digest, Sha256};
use tokenizers::models::wordpiece::WordPiece;
use tokenizers::normalizers::bert::BertNormalizer;
use tokenizers::pre_tokenizers::bert::BertPreTokenizer;
use tokenizers::{AddedToken, ModelWrapper, NormalizerWrapper, Tokenizer};

use crate::error::{Error, Result};
use crate::fast::FastWordPiece;

/// The WordPiece continuation prefix.
pub const CONTINUING_SUBWORD_PREFIX: &str = "##";
/// Words with more characters than this become `[UNK]` (BERT's limit).
pub const MAX_INPUT_CHARS_PER_WORD: usize = 100;

/// The special token strings, in the order of [`SpecialTokens`]' fields.
pub const SPECIAL_TOKEN_STRINGS: [&str; 5] = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"];

/// Ids of the special tokens, resolved from a vocabulary.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SpecialTokens {
    /// `[PAD]`: padding (id 0 in BERT's vocabulary).
    pub pad: u32,
    /// `[UNK]`: unknown word.
    pub unk: u32,
    /// `[CLS]`: first token of every sequence.
    pub cls: u32,
    /// `[SEP]`: closes each segment.
    pub sep: u32,
    /// `[MASK]`: the masked-position token.
    pub mask: u32,
}

impl SpecialTokens {
    /// Resolves the five special tokens with `lookup`, failing with
    /// [`Error::MissingSpecialToken`] (naming `source`) for the first one missing.
    pub fn resolve(source: &Path, lookup: impl Fn(&str) -> Option<u32>) -> Result<Self> {
        let get = |token: &'static str| {
            lookup(token).ok_or_else(|| Error::MissingSpecialToken {
                source_path: source.to_path_buf(),
                token,
            })
        };
        Ok(SpecialTokens {
            pad: get("[PAD]")?,
            unk: get("[UNK]")?,
            cls: get("[CLS]")?,
            sep: get("[SEP]")?,
            mask: get("[MASK]")?,
        })
    }

    /// The five ids in field order (`pad, unk, cls, sep, mask`).
    pub fn as_array(&self) -> [u32; 5] {
        [self.pad, self.unk, self.cls, self.sep, self.mask]
    }

    /// Whether `id` is one of the special tokens.
    pub fn contains(&self, id: u32) -> bool {
        self.as_array().contains(&id)
    }
}

/// Normalisation options, as in HuggingFace's `tokenizer_config.json`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct NormalizerOptions {
    /// Lower-case the text (`do_lower_case`).
    pub lowercase: bool,
    /// Strip accents (`strip_accents`); `None` follows `lowercase`, as BERT does.
    pub strip_accents: Option<bool>,
}

impl NormalizerOptions {
    /// BERT uncased: lower-case and strip accents.
    pub const UNCASED: Self = NormalizerOptions {
        lowercase: true,
        strip_accents: None,
    };

    /// Whether accents are stripped once `None` is resolved.
    pub fn strips_accents(&self) -> bool {
        self.strip_accents.unwrap_or(self.lowercase)
    }

    fn normalizer(&self) -> BertNormalizer {
        BertNormalizer::new(true, true, self.strip_accents, self.lowercase)
    }
}

impl Default for NormalizerOptions {
    fn default() -> Self {
        Self::UNCASED
    }
}

/// The result of tokenizing one text, without special tokens.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Encoding {
    /// Token ids.
    pub ids: Vec<u32>,
    /// Token strings (`##`-prefixed for word continuations).
    pub tokens: Vec<String>,
    /// Byte offsets `(start, end)` of each token in the input string.
    pub offsets: Vec<(usize, usize)>,
}

impl Encoding {
    /// Number of tokens.
    pub fn len(&self) -> usize {
        self.ids.len()
    }

    /// Whether the text produced no token.
    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }
}

/// Model inputs for one sequence: `[CLS] A [SEP]` or `[CLS] A [SEP] B [SEP]`, unpadded.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ModelInput {
    /// Token ids including `[CLS]` and `[SEP]`.
    pub input_ids: Vec<u32>,
    /// 0 for `[CLS]`, A and the first `[SEP]`; 1 for B and its `[SEP]`.
    pub token_type_ids: Vec<u32>,
}

impl ModelInput {
    /// Number of tokens.
    pub fn len(&self) -> usize {
        self.input_ids.len()
    }

    /// Whether there is no token (never true for a built input).
    pub fn is_empty(&self) -> bool {
        self.input_ids.is_empty()
    }

    /// Returns `(input_ids, token_type_ids, attention_mask)` padded with `pad_id` (type 0,
    /// mask 0) to `len`; an input already longer than `len` is returned whole.
    pub fn padded(&self, len: usize, pad_id: u32) -> (Vec<u32>, Vec<u32>, Vec<u32>) {
        let n = self.input_ids.len();
        let extra = len.saturating_sub(n);
        let mut ids = self.input_ids.clone();
        ids.extend(std::iter::repeat_n(pad_id, extra));
        let mut types = self.token_type_ids.clone();
        types.extend(std::iter::repeat_n(0, extra));
        let mut mask = vec![1; n];
        mask.extend(std::iter::repeat_n(0, extra));
        (ids, types, mask)
    }
}

#[derive(Deserialize, Default)]
struct TokenizerConfigJson {
    do_lower_case: Option<bool>,
    strip_accents: Option<bool>,
}

/// A BERT WordPiece tokenizer.
///
/// Cheap to share between threads (`Send + Sync`); all methods take `&self`.
#[derive(Debug, Clone)]
pub struct WordPieceTokenizer {
    inner: Tokenizer,
    special: SpecialTokens,
    options: NormalizerOptions,
    vocab_sha256: String,
    vocab_size: usize,
    source: PathBuf,
    /// The fast path of [`Self::encode_ids`], when the configuration allows one.
    fast: Option<Arc<FastWordPiece>>,
}

impl WordPieceTokenizer {
    /// Loads a `vocab.txt` (one token per line, the line index is the id) with BERT's pipeline.
    ///
    /// `lowercase` also turns accent stripping on, as BERT's uncased models do; use
    /// [`Self::from_vocab_txt_with`] to choose both separately.
    ///
    /// # Errors
    /// The file cannot be read, a line is not UTF-8, empty or a duplicate, or one of `[PAD]`,
    /// `[UNK]`, `[CLS]`, `[SEP]`, `[MASK]` is missing.
    pub fn from_vocab_txt(path: impl AsRef<Path>, lowercase: bool) -> Result<Self> {
        Self::from_vocab_txt_with(
            path,
            NormalizerOptions {
                lowercase,
                strip_accents: None,
            },
        )
    }

    /// Loads a `vocab.txt` with explicit normalisation options.
    ///
    /// # Errors
    /// As [`Self::from_vocab_txt`].
    pub fn from_vocab_txt_with(path: impl AsRef<Path>, options: NormalizerOptions) -> Result<Self> {
        let path = path.as_ref();
        let tokens = read_vocab_txt(path)?;
        Self::from_tokens(&tokens, options, path)
    }

    /// Builds a tokenizer from the vocabulary `tokens` (index = id).
    ///
    /// `source` only names the origin in error messages.
    ///
    /// # Errors
    /// A token is empty or duplicated, a special token is missing.
    pub fn from_tokens(
        tokens: &[String],
        options: NormalizerOptions,
        source: &Path,
    ) -> Result<Self> {
        let mut seen = HashSet::with_capacity(tokens.len());
        let mut vocab = serde_json::Map::with_capacity(tokens.len());
        for (i, token) in tokens.iter().enumerate() {
            if token.is_empty() || !seen.insert(token.as_str()) {
                return Err(Error::Parse {
                    path: source.to_path_buf(),
                    line: i as u64 + 1,
                    message: if token.is_empty() {
                        "empty vocabulary entry".into()
                    } else {
                        format!("duplicate vocabulary entry {token:?}")
                    },
                });
            }
            vocab.insert(token.clone(), serde_json::Value::from(i as u64));
        }
        let special = SpecialTokens::resolve(source, |t| {
            vocab.get(t).and_then(|v| v.as_u64()).map(|v| v as u32)
        })?;
        let model_json = serde_json::json!({
            "type": "WordPiece",
            "unk_token": "[UNK]",
            "continuing_subword_prefix": CONTINUING_SUBWORD_PREFIX,
            "max_input_chars_per_word": MAX_INPUT_CHARS_PER_WORD,
            "vocab": vocab,
        });
        // through bytes: WordPiece's deserializer borrows strings, which a `Value` cannot lend
        let model: WordPiece = serde_json::from_slice(&model_json.to_string().into_bytes())
            .map_err(|e| Error::Parse {
                path: source.to_path_buf(),
                line: 0,
                message: format!("cannot build the wordpiece model: {e}"),
            })?;
        let mut inner = Tokenizer::new(model);
        inner
            .with_normalizer(Some(options.normalizer()))
            .with_pre_tokenizer(Some(BertPreTokenizer));
        add_special_tokens(&mut inner);
        Ok(Self::finish(inner, special, options, source))
    }

    /// Loads a HuggingFace `tokenizer.json` whose model is WordPiece.
    ///
    /// Its truncation and padding settings are dropped (this type truncates explicitly), the
    /// five special tokens are registered as added tokens, and the normaliser options are read
    /// from its `BertNormalizer` (BERT uncased when it has another normaliser).
    ///
    /// # Errors
    /// The file cannot be read or parsed, its model is not WordPiece, a special token is missing.
    pub fn from_tokenizer_json(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let bytes = fs::read(path).map_err(|e| Error::io("failed to read", path, e))?;
        let mut inner = Tokenizer::from_bytes(&bytes)
            .map_err(|e| Error::tokenizer(Some(path.to_path_buf()), e))?;
        let ModelWrapper::WordPiece(wp) = inner.get_model() else {
            return Err(Error::Parse {
                path: path.to_path_buf(),
                line: 0,
                message: "the tokenizer model is not WordPiece".into(),
            });
        };
        if wp.continuing_subword_prefix != CONTINUING_SUBWORD_PREFIX {
            tracing::warn!(
                path = %path.display(),
                prefix = %wp.continuing_subword_prefix,
                "wordpiece continuation prefix is not ##"
            );
        }
        let options = match inner.get_normalizer() {
            Some(NormalizerWrapper::BertNormalizer(n)) => NormalizerOptions {
                lowercase: n.lowercase,
                strip_accents: n.strip_accents,
            },
            _ => {
                tracing::warn!(path = %path.display(), "no BertNormalizer, using BERT uncased");
                inner.with_normalizer(Some(NormalizerOptions::UNCASED.normalizer()));
                NormalizerOptions::UNCASED
            }
        };
        inner
            .with_truncation(None)
            .map_err(|e| Error::tokenizer(Some(path.to_path_buf()), e))?;
        inner.with_padding(None);
        let special = SpecialTokens::resolve(path, |t| inner.token_to_id(t))?;
        add_special_tokens(&mut inner);
        Ok(Self::finish(inner, special, options, path))
    }

    /// Loads the tokenizer of a model directory: `tokenizer.json` if present, else `vocab.txt`.
    ///
    /// `tokenizer_config.json`'s `do_lower_case` and `strip_accents`, when present, override the
    /// normaliser (as HuggingFace's `BertTokenizerFast` does); without them the tokenizer is
    /// lower-casing (BERT uncased) for `vocab.txt`, and as stored for `tokenizer.json`.
    ///
    /// # Errors
    /// Neither file exists, or loading fails as in [`Self::from_tokenizer_json`] /
    /// [`Self::from_vocab_txt`].
    pub fn from_dir(model_dir: impl AsRef<Path>) -> Result<Self> {
        let dir = model_dir.as_ref();
        let config_path = dir.join("tokenizer_config.json");
        let config: TokenizerConfigJson = if config_path.is_file() {
            let bytes =
                fs::read(&config_path).map_err(|e| Error::io("failed to read", &config_path, e))?;
            serde_json::from_slice(&bytes).map_err(|source| Error::Json {
                path: config_path.clone(),
                source,
            })?
        } else {
            TokenizerConfigJson::default()
        };
        let json_path = dir.join("tokenizer.json");
        let vocab_path = dir.join("vocab.txt");
        if json_path.is_file() {
            let mut tok = Self::from_tokenizer_json(&json_path)?;
            let wanted = NormalizerOptions {
                lowercase: config.do_lower_case.unwrap_or(tok.options.lowercase),
                strip_accents: config.strip_accents.or(tok.options.strip_accents),
            };
            if wanted != tok.options {
                tracing::debug!(
                    path = %config_path.display(),
                    ?wanted,
                    stored = ?tok.options,
                    "tokenizer_config.json overrides the normaliser of tokenizer.json"
                );
                tok.inner.with_normalizer(Some(wanted.normalizer()));
                tok.options = wanted;
                tok.refresh_fast();
            }
            Ok(tok)
        } else if vocab_path.is_file() {
            Self::from_vocab_txt_with(
                &vocab_path,
                NormalizerOptions {
                    lowercase: config.do_lower_case.unwrap_or(true),
                    strip_accents: config.strip_accents,
                },
            )
        } else {
            Err(Error::Parse {
                path: dir.to_path_buf(),
                line: 0,
                message: "neither tokenizer.json nor vocab.txt found in this directory".into(),
            })
        }
    }

    /// Loads a tokenizer from a model directory ([`Self::from_dir`]), a `*.json` file
    /// ([`Self::from_tokenizer_json`]) or any other file as a `vocab.txt` (lower-casing).
    ///
    /// # Errors
    /// As the constructor chosen.
    pub fn from_path(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        if path.is_dir() {
            Self::from_dir(path)
        } else if path
            .extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("json"))
        {
            Self::from_tokenizer_json(path)
        } else {
            Self::from_vocab_txt(path, true)
        }
    }

    /// The same tokenizer with other normalisation options.
    #[must_use]
    pub fn with_normalizer_options(mut self, options: NormalizerOptions) -> Self {
        self.inner.with_normalizer(Some(options.normalizer()));
        self.options = options;
        self.refresh_fast();
        self
    }

    /// Rebuilds the fast path after a change of `inner`'s configuration.
    fn refresh_fast(&mut self) {
        self.fast = FastWordPiece::new(&self.inner).map(Arc::new);
        if self.fast.is_none() {
            tracing::debug!(
                source = %self.source.display(),
                "no fast WordPiece path for this tokenizer configuration"
            );
        }
    }

    fn finish(
        inner: Tokenizer,
        special: SpecialTokens,
        options: NormalizerOptions,
        source: &Path,
    ) -> Self {
        let vocab_size = inner.get_vocab_size(true);
        let mut hasher = Sha256::new();
        for id in 0..vocab_size as u32 {
            if let Some(tok) = inner.id_to_token(id) {
                hasher.update(tok.as_bytes());
            }
            hasher.update(b"\n");
        }
        let vocab_sha256 = hex(&hasher.finalize());
        let mut tok = WordPieceTokenizer {
            inner,
            special,
            options,
            vocab_sha256,
            vocab_size,
            source: source.to_path_buf(),
            fast: None,
        };
        tok.refresh_fast();
        tok
    }

    /// Tokenizes `text` without adding special tokens.
    ///
    /// # Errors
    /// Only if the `tokenizers` pipeline fails, which does not happen for valid UTF-8 text with
    /// this configuration.
    pub fn encode(&self, text: &str) -> Result<Encoding> {
        let text = self.prepare_text(text);
        let enc = self
            .inner
            .encode(text.as_ref(), false)
            .map_err(|e| Error::tokenizer(None, e))?;
        Ok(Encoding {
            ids: enc.get_ids().to_vec(),
            tokens: enc.get_tokens().to_vec(),
            offsets: enc.get_offsets().to_vec(),
        })
    }

    /// Tokenizes `text` to ids only (much faster than [`Self::encode`]: no token strings or
    /// offsets are kept, and the common characters take a fast path, see
    /// [`Self::has_fast_path`]). The ids equal [`Self::encode_ids_reference`]'s.
    ///
    /// # Errors
    /// As [`Self::encode`].
    pub fn encode_ids(&self, text: &str) -> Result<Vec<u32>> {
        let mut ids = Vec::new();
        self.encode_ids_into(text, &mut ids)?;
        Ok(ids)
    }

    /// [`Self::encode_ids`] into `ids` (cleared first), reusing its allocation.
    ///
    /// # Errors
    /// As [`Self::encode`].
    pub fn encode_ids_into(&self, text: &str, ids: &mut Vec<u32>) -> Result<()> {
        ids.clear();
        if let Some(fast) = &self.fast {
            let slow = |segment: &str, out: &mut Vec<u32>| -> Result<()> {
                let enc = self
                    .inner
                    .encode_fast(segment, false)
                    .map_err(|e| Error::tokenizer(None, e))?;
                out.extend_from_slice(enc.get_ids());
                Ok(())
            };
            if fast.encode_into(text, ids, slow)? {
                return Ok(());
            }
        }
        let text = self.prepare_text(text);
        let enc = self
            .inner
            .encode_fast(text.as_ref(), false)
            .map_err(|e| Error::tokenizer(None, e))?;
        ids.extend_from_slice(enc.get_ids());
        Ok(())
    }

    /// The ids of `text` through the `tokenizers` pipeline alone, without the fast path: the
    /// reference [`Self::encode_ids`] is tested against (and slower).
    ///
    /// # Errors
    /// As [`Self::encode`].
    pub fn encode_ids_reference(&self, text: &str) -> Result<Vec<u32>> {
        let text = self.prepare_text(text);
        let enc = self
            .inner
            .encode_fast(text.as_ref(), false)
            .map_err(|e| Error::tokenizer(None, e))?;
        Ok(enc.get_ids().to_vec())
    }

    /// Whether [`Self::encode_ids`] has a fast path for this configuration: a BERT
    /// normaliser with `clean_text`, BERT's pre-tokeniser, a WordPiece model, no truncation
    /// or padding, and added tokens matched on the raw text (everything this crate's
    /// constructors build). It covers text made of ASCII and common Unicode punctuation
    /// (quotes, dashes, ellipsis); other whitespace-separated pieces, and texts containing
    /// an added token such as `[MASK]` or a capital sigma, go through `tokenizers`.
    pub fn has_fast_path(&self) -> bool {
        self.fast.is_some()
    }

    /// Tokenizes many texts in parallel on all cores (the `tokenizers` crate's rayon pool,
    /// unless `TOKENIZERS_PARALLELISM=false`). The output order is the input order.
    ///
    /// # Errors
    /// As [`Self::encode`].
    pub fn encode_batch<S: AsRef<str> + Sync>(&self, texts: &[S]) -> Result<Vec<Encoding>> {
        let prepared: Vec<Cow<'_, str>> = texts
            .iter()
            .map(|t| self.prepare_text(t.as_ref()))
            .collect();
        let inputs: Vec<tokenizers::EncodeInput> =
            prepared.iter().map(|t| t.as_ref().into()).collect();
        let encs = self
            .inner
            .encode_batch(inputs, false)
            .map_err(|e| Error::tokenizer(None, e))?;
        Ok(encs
            .into_iter()
            .map(|enc| Encoding {
                ids: enc.get_ids().to_vec(),
                tokens: enc.get_tokens().to_vec(),
                offsets: enc.get_offsets().to_vec(),
            })
            .collect())
    }

    /// Tokenizes `a` (and `b`) and builds `[CLS] a [SEP] (b [SEP])` truncated to `max_len`
    /// tokens, as [`Self::build_inputs`] does.
    ///
    /// # Errors
    /// `max_len` is too small for the special tokens, or tokenization fails.
    pub fn encode_pair(&self, a: &str, b: Option<&str>, max_len: usize) -> Result<ModelInput> {
        let a = self.encode_ids(a)?;
        let b = b.map(|b| self.encode_ids(b)).transpose()?;
        self.build_inputs(&a, b.as_deref(), max_len)
    }

    /// Builds `[CLS] a [SEP]` or `[CLS] a [SEP] b [SEP]` from token ids, truncating to at most
    /// `max_len` tokens with HuggingFace's "longest first" rule (see [`truncate_longest_first`]).
    ///
    /// Token types are 0 for `[CLS]`, `a` and the first `[SEP]`, 1 for `b` and its `[SEP]`.
    /// A `b` that is present but empty still gets its `[SEP]`, as HuggingFace does.
    ///
    /// # Errors
    /// [`Error::Config`] when `max_len` is smaller than the number of special tokens (2 or 3).
    pub fn build_inputs(&self, a: &[u32], b: Option<&[u32]>, max_len: usize) -> Result<ModelInput> {
        build_inputs(self.special, a, b, max_len)
    }

    /// Text as the normaliser should see it: with lower-casing on, a capital sigma is turned
    /// into the final (`ς`) or medial (`σ`) small sigma by Unicode's context rule, as Python's
    /// `str.lower()` (used by BERT's reference tokenizer) does and the `tokenizers` crate's
    /// character-wise lower-casing does not. Same byte length, so offsets are unchanged.
    fn prepare_text<'t>(&self, text: &'t str) -> Cow<'t, str> {
        if self.options.lowercase && text.contains('\u{3a3}') {
            Cow::Owned(lowercase_capital_sigmas(text))
        } else {
            Cow::Borrowed(text)
        }
    }

    /// Number of entries in the vocabulary (including added tokens).
    pub fn vocab_size(&self) -> usize {
        self.vocab_size
    }

    /// The id of `token`, if it is in the vocabulary.
    pub fn token_to_id(&self, token: &str) -> Option<u32> {
        self.inner.token_to_id(token)
    }

    /// The token with id `id`, if any.
    pub fn id_to_token(&self, id: u32) -> Option<String> {
        self.inner.id_to_token(id)
    }

    /// The vocabulary in id order (ids without a token, if any, are empty strings).
    pub fn vocab_tokens(&self) -> Vec<String> {
        (0..self.vocab_size as u32)
            .map(|id| self.inner.id_to_token(id).unwrap_or_default())
            .collect()
    }

    /// The special token ids.
    pub fn special_tokens(&self) -> SpecialTokens {
        self.special
    }

    /// The normalisation options in use.
    pub fn normalizer_options(&self) -> NormalizerOptions {
        self.options
    }

    /// Hex SHA-256 of the vocabulary written as `vocab.txt` (each token in id order followed by
    /// `\n`): equal to `sha256sum vocab.txt` for a canonical file, and the same whether the
    /// tokenizer came from `vocab.txt` or `tokenizer.json`.
    pub fn vocab_sha256(&self) -> &str {
        &self.vocab_sha256
    }

    /// The file or directory this tokenizer was loaded from.
    pub fn source(&self) -> &Path {
        &self.source
    }

    /// The underlying `tokenizers` tokenizer.
    pub fn inner(&self) -> &Tokenizer {
        &self.inner
    }
}

fn add_special_tokens(inner: &mut Tokenizer) {
    let added: Vec<AddedToken> = SPECIAL_TOKEN_STRINGS
        .iter()
        .map(|t| AddedToken::from(*t, true))
        .collect();
    inner.add_special_tokens(&added);
}

/// Replaces each `Σ` with the small sigma that `str::to_lowercase` (Unicode's Final_Sigma
/// rule) gives it in context, leaving every other character alone.
fn lowercase_capital_sigmas(text: &str) -> String {
    let lowered = text.to_lowercase();
    let mut lowered_chars = lowered.chars();
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        let n = c.to_lowercase().count();
        if c == '\u{3a3}' {
            // std maps a capital sigma to exactly one char, chosen by context
            let small = lowered_chars.next().unwrap_or('\u{3c3}');
            out.push(small);
        } else {
            out.push(c);
            for _ in 0..n {
                lowered_chars.next();
            }
        }
    }
    out
}

/// Reads a `vocab.txt`: one token per line (a trailing `\r` is removed), the line index is the id.
///
/// # Errors
/// The file cannot be read or a line is not UTF-8.
pub fn read_vocab_txt(path: &Path) -> Result<Vec<String>> {
    let bytes = fs::read(path).map_err(|e| Error::io("failed to read", path, e))?;
    let mut tokens = Vec::new();
    let body = bytes.strip_suffix(b"\n").unwrap_or(&bytes);
    if body.is_empty() {
        return Err(Error::Parse {
            path: path.to_path_buf(),
            line: 1,
            message: "empty vocabulary".into(),
        });
    }
    for (i, line) in body.split(|&b| b == b'\n').enumerate() {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let token = std::str::from_utf8(line).map_err(|_| Error::InvalidUtf8 {
            path: path.to_path_buf(),
            line: i as u64 + 1,
        })?;
        tokens.push(token.to_owned());
    }
    Ok(tokens)
}

/// Lengths `(len_a, len_b)` after HuggingFace's "longest first" truncation of a pair to
/// `max_tokens` content tokens (the `tokenizers` crate's rule): the longer sequence is cut
/// first; when both must be cut, `a` keeps `max_tokens / 2` and `b` the rest.
pub fn truncate_longest_first(len_a: usize, len_b: usize, max_tokens: usize) -> (usize, usize) {
    if len_a + len_b <= max_tokens {
        return (len_a, len_b);
    }
    let swap = len_a > len_b;
    let short = len_a.min(len_b);
    let mut n1 = short;
    let mut n2 = if short > max_tokens {
        short
    } else {
        short.max(max_tokens - short)
    };
    if n1 + n2 > max_tokens {
        n1 = max_tokens / 2;
        n2 = n1 + max_tokens % 2;
    }
    let (na, nb) = if swap { (n2, n1) } else { (n1, n2) };
    (na.min(len_a), nb.min(len_b))
}

pub(crate) fn build_inputs(
    special: SpecialTokens,
    a: &[u32],
    b: Option<&[u32]>,
    max_len: usize,
) -> Result<ModelInput> {
    let n_special = if b.is_some() { 3 } else { 2 };
    if max_len < n_special {
        return Err(Error::Config(format!(
            "max_len {max_len} leaves no room for the {n_special} special tokens"
        )));
    }
    let room = max_len - n_special;
    let (la, lb) = match b {
        Some(b) => truncate_longest_first(a.len(), b.len(), room),
        None => (a.len().min(room), 0),
    };
    let mut input_ids = Vec::with_capacity(la + lb + n_special);
    input_ids.push(special.cls);
    input_ids.extend_from_slice(&a[..la]);
    input_ids.push(special.sep);
    let mut token_type_ids = vec![0; input_ids.len()];
    if let Some(b) = b {
        input_ids.extend_from_slice(&b[..lb]);
        input_ids.push(special.sep);
        token_type_ids.resize(input_ids.len(), 1);
    }
    Ok(ModelInput {
        input_ids,
        token_type_ids,
    })
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(s, "{b:02x}");
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn specials() -> SpecialTokens {
        SpecialTokens {
            pad: 0,
            unk: 100,
            cls: 101,
            sep: 102,
            mask: 103,
        }
    }

    #[test]
    fn longest_first_cuts_the_longer_sequence() {
        assert_eq!(truncate_longest_first(3, 4, 10), (3, 4));
        assert_eq!(truncate_longest_first(2, 20, 10), (2, 8));
        assert_eq!(truncate_longest_first(20, 2, 10), (8, 2));
        assert_eq!(truncate_longest_first(20, 20, 10), (5, 5));
        assert_eq!(truncate_longest_first(20, 20, 11), (5, 6));
        assert_eq!(truncate_longest_first(21, 20, 11), (6, 5));
        assert_eq!(truncate_longest_first(0, 20, 5), (0, 5));
    }

    #[test]
    fn build_inputs_layout_and_types() {
        let got = build_inputs(specials(), &[1, 2, 3], Some(&[4, 5]), 16).expect("fits");
        assert_eq!(got.input_ids, vec![101, 1, 2, 3, 102, 4, 5, 102]);
        assert_eq!(got.token_type_ids, vec![0, 0, 0, 0, 0, 1, 1, 1]);
        let single = build_inputs(specials(), &[1, 2, 3], None, 4).expect("fits");
        assert_eq!(single.input_ids, vec![101, 1, 2, 102]);
        assert_eq!(single.token_type_ids, vec![0; 4]);
        let (ids, types, mask) = single.padded(6, 0);
        assert_eq!(ids, vec![101, 1, 2, 102, 0, 0]);
        assert_eq!(types, vec![0; 6]);
        assert_eq!(mask, vec![1, 1, 1, 1, 0, 0]);
        assert!(matches!(
            build_inputs(specials(), &[1], Some(&[2]), 2),
            Err(Error::Config(_))
        ));
    }

    #[test]
    fn capital_sigma_follows_the_final_sigma_rule() {
        assert_eq!(lowercase_capital_sigmas("ΟΔΟΣ"), "ΟΔΟς");
        assert_eq!(lowercase_capital_sigmas("ΣΑ Σ ΑΣ."), "σΑ σ Ας.");
        assert_eq!(lowercase_capital_sigmas("İΣ x"), "İς x");
    }

    #[test]
    fn hex_is_lower_case() {
        assert_eq!(hex(&[0, 15, 255]), "000fff");
    }
}

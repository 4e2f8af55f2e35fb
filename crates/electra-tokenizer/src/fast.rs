//! A fast path for BERT WordPiece ids, equal to the `tokenizers` pipeline by construction.
//!
//! [`FastWordPiece`] reimplements, for the characters whose BERT normalisation is trivial, what
//! `BertNormalizer` → `BertPreTokenizer` → `WordPiece` do, without the per-word allocations of
//! the `tokenizers` crate:
//!
//! - a text is cut into *segments* at ASCII whitespace (space, `\t`, `\n`, `\r`: the
//!   normaliser maps them to spaces and the pre-tokeniser splits there);
//! - a segment made of ASCII and a short list of Unicode punctuation marks ([`is_plain_punct`]:
//!   quotes, dashes, ellipsis, ...; no decomposition, no case, not CJK) is handled here:
//!   ASCII control characters are removed (they join their neighbours, as `clean_text` does),
//!   letters are lower-cased when the normaliser lower-cases, every ASCII punctuation
//!   character and every listed mark is a word of its own, and each word goes through
//!   greedy longest-match-first WordPiece (continuation prefix, `[UNK]` for a word with an
//!   unmatchable piece or with more than `max_input_chars_per_word` characters);
//! - any other segment (accents, CJK, Unicode spaces or controls, symbols, ...), together with
//!   the uncovered segments that follow it, is encoded by the `tokenizers` pipeline alone,
//!   through the caller's fallback. Normalisation is
//!   character-local (NFD only reorders combining marks, which never cross a space) and words
//!   never cross whitespace, so the ids of a text are the concatenation of its segments' ids;
//! - a text that contains an added token's content (`[MASK]`, ...) or, when lower-casing, a
//!   capital sigma (lower-cased by context, see `WordPieceTokenizer::prepare_text`) is left
//!   entirely to the caller.
//!
//! The fast path exists only for the configuration it reproduces: a `BertNormalizer` with
//! `clean_text`, a `BertPreTokenizer`, a WordPiece model whose unknown token is in its
//! vocabulary, no truncation or padding, a post-processor that adds nothing without special
//! tokens, and added tokens matched on the raw text (not `normalized`).

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

use tokenizers::{
    ModelWrapper, NormalizerWrapper, PostProcessorWrapper, PreTokenizerWrapper, Tokenizer,
};

use crate::error::Result;

/// Byte classes of the scanner.
const WORD: u8 = 0;
const PUNCT: u8 = 1;
const SPACE: u8 = 2;
const REMOVED: u8 = 3;
const NON_ASCII: u8 = 4;
const KIND: u8 = 0x0f;
/// Flag: an added token starts with this byte.
const ADDED: u8 = 0x80;

/// The Unicode (non-ASCII) punctuation marks handled by the fast path: general punctuation
/// U+2010–U+2027 and U+2030–U+2043 and the Latin-1 marks `¡ § « ¶ · » ¿`. All are in a
/// Unicode punctuation category (so the pre-tokeniser isolates them), have no canonical
/// decomposition and no case, and are neither whitespace, control nor CJK: BERT's
/// normaliser leaves them unchanged whatever its options.
pub(crate) fn is_plain_punct(c: char) -> bool {
    matches!(
        c,
        '\u{2010}'..='\u{2027}'
            | '\u{2030}'..='\u{2043}'
            | '\u{a1}'
            | '\u{a7}'
            | '\u{ab}'
            | '\u{b6}'
            | '\u{b7}'
            | '\u{bb}'
            | '\u{bf}'
    )
}

/// FxHash-style multiply-rotate hasher with a final mix: vocabulary keys are short, trusted
/// byte strings, for which SipHash's DoS resistance only costs time.
#[derive(Default, Clone, Copy)]
struct KeyHasher(u64);

const SEED: u64 = 0x51_7c_c1_b7_27_22_0a_95;

impl KeyHasher {
    #[inline]
    fn add(&mut self, word: u64) {
        self.0 = (self.0.rotate_left(5) ^ word).wrapping_mul(SEED);
    }
}

impl Hasher for KeyHasher {
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for chunk in &mut chunks {
            let mut w = [0u8; 8];
            w.copy_from_slice(chunk);
            self.add(u64::from_le_bytes(w));
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut w = [0u8; 8];
            w[..rest.len()].copy_from_slice(rest);
            self.add(u64::from_le_bytes(w));
        }
    }

    #[inline]
    fn write_usize(&mut self, n: usize) {
        self.add(n as u64);
    }

    #[inline]
    fn finish(&self) -> u64 {
        // murmur3's fmix64: every input bit reaches the low (bucket) and high (tag) bits
        let mut h = self.0;
        h ^= h >> 33;
        h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
        h ^= h >> 33;
        h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
        h ^ (h >> 33)
    }
}

/// What [`FastWordPiece::scan_segment`] found.
enum Scan {
    /// An added token starts in the segment.
    Added,
    /// The segment ends at byte `end`; `covered`: the fast path handles all its characters.
    Segment { end: usize, covered: bool },
}

type KeyMap = HashMap<Box<[u8]>, u32, BuildHasherDefault<KeyHasher>>;

/// The fast WordPiece encoder of one tokenizer configuration (see the module docs).
pub(crate) struct FastWordPiece {
    /// Every vocabulary entry.
    vocab: KeyMap,
    /// Entries that start with the continuation prefix, keyed by the rest.
    continuation: KeyMap,
    /// Longest key of `vocab` / `continuation`, in bytes: longer slices cannot match.
    longest: usize,
    longest_continuation: usize,
    unk: u32,
    max_word_chars: usize,
    lowercase: bool,
    classes: [u8; 256],
    /// Contents of the added tokens.
    added: Vec<Box<[u8]>>,
}

impl std::fmt::Debug for FastWordPiece {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FastWordPiece")
            .field("vocab", &self.vocab.len())
            .field("continuation", &self.continuation.len())
            .field("unk", &self.unk)
            .field("max_word_chars", &self.max_word_chars)
            .field("lowercase", &self.lowercase)
            .field("added", &self.added.len())
            .finish()
    }
}

impl FastWordPiece {
    /// The fast encoder for `inner`, or `None` when `inner`'s configuration is not one the
    /// fast path reproduces exactly.
    pub(crate) fn new(inner: &Tokenizer) -> Option<Self> {
        let ModelWrapper::WordPiece(wp) = inner.get_model() else {
            return None;
        };
        let Some(NormalizerWrapper::BertNormalizer(norm)) = inner.get_normalizer() else {
            return None;
        };
        if !norm.clean_text
            || !matches!(
                inner.get_pre_tokenizer(),
                Some(PreTokenizerWrapper::BertPreTokenizer(_))
            )
            || !matches!(
                inner.get_post_processor(),
                None | Some(PostProcessorWrapper::Bert(_) | PostProcessorWrapper::Template(_))
            )
            || inner.get_truncation().is_some()
            || inner.get_padding().is_some()
        {
            return None;
        }
        let prefix = wp.continuing_subword_prefix.as_bytes();
        let mut vocab = KeyMap::default();
        let mut continuation = KeyMap::default();
        let (mut longest, mut longest_continuation) = (0, 0);
        for (token, id) in tokenizers::Model::get_vocab(wp) {
            let bytes = token.into_bytes();
            if let Some(rest) = bytes.strip_prefix(prefix) {
                longest_continuation = longest_continuation.max(rest.len());
                continuation.insert(rest.into(), id);
            }
            longest = longest.max(bytes.len());
            vocab.insert(bytes.into_boxed_slice(), id);
        }
        let unk = *vocab.get(wp.unk_token.as_bytes())?;

        let mut classes = [WORD; 256];
        for (b, class) in classes.iter_mut().enumerate() {
            let b = b as u8;
            *class = match b {
                b' ' | b'\t' | b'\n' | b'\r' => SPACE,
                // the other C0 controls and DEL are Unicode "Cc": clean_text removes them
                0..=0x1f | 0x7f => REMOVED,
                0x80..=0xff => NON_ASCII,
                _ if b.is_ascii_punctuation() => PUNCT,
                _ => WORD,
            };
        }
        let mut added = Vec::new();
        for token in inner.get_added_tokens_decoder().into_values() {
            if token.normalized {
                return None; // matched on the normalised text: not reproduced here
            }
            if let Some(&first) = token.content.as_bytes().first() {
                classes[first as usize] |= ADDED;
                added.push(token.content.into_bytes().into_boxed_slice());
            }
        }
        Some(FastWordPiece {
            vocab,
            continuation,
            longest,
            longest_continuation,
            unk,
            max_word_chars: wp.max_input_chars_per_word,
            lowercase: norm.lowercase,
            classes,
            added,
        })
    }

    /// Whether an added token starts at the beginning of `rest`.
    fn added_at(&self, rest: &[u8]) -> bool {
        self.added.iter().any(|t| rest.starts_with(t))
    }

    /// Appends the ids of `text` to `out`, calling `slow(segment, out)` to append those of a
    /// whitespace-free segment the fast path does not cover.
    ///
    /// Returns `Ok(false)`, with `out` as it was, when the whole text must go through the
    /// slow path instead (it contains an added token, or a capital sigma under lower-casing).
    ///
    /// # Errors
    /// Only what `slow` returns.
    pub(crate) fn encode_into<F>(&self, text: &str, out: &mut Vec<u32>, mut slow: F) -> Result<bool>
    where
        F: FnMut(&str, &mut Vec<u32>) -> Result<()>,
    {
        if self.lowercase && text.contains('\u{3a3}') {
            return Ok(false);
        }
        let bytes = text.as_bytes();
        let n = bytes.len();
        let base = out.len();
        let mut word: Vec<u8> = Vec::with_capacity(32);
        // start of the current segment, and the length of `out` there
        let mut seg_start = 0;
        let mut seg_out = base;
        let mut i = 0;
        while i < n {
            let b = bytes[i];
            let class = self.classes[b as usize];
            if class & ADDED != 0 && self.added_at(&bytes[i..]) {
                out.truncate(base);
                return Ok(false);
            }
            match class & KIND {
                WORD => {
                    word.push(if self.lowercase {
                        b.to_ascii_lowercase()
                    } else {
                        b
                    });
                    i += 1;
                }
                PUNCT => {
                    self.flush(&mut word, out);
                    self.push_word(&bytes[i..=i], 1, out);
                    i += 1;
                }
                SPACE => {
                    self.flush(&mut word, out);
                    i += 1;
                    seg_start = i;
                    seg_out = out.len();
                }
                REMOVED => i += 1,
                _ => {
                    let c = text[i..].chars().next().unwrap_or(char::REPLACEMENT_CHARACTER);
                    let len = c.len_utf8();
                    if is_plain_punct(c) {
                        self.flush(&mut word, out);
                        self.push_word(&bytes[i..i + len], 1, out);
                        i += len;
                    } else {
                        // this segment and the uncovered segments right after it go to the
                        // slow path in one call (one call per word would cost more than the
                        // old whole-line call on text that is mostly non-ASCII)
                        let Scan::Segment { mut end, .. } = self.scan_segment(text, i + len) else {
                            out.truncate(base);
                            return Ok(false);
                        };
                        loop {
                            let next = end
                                + bytes[end..]
                                    .iter()
                                    .take_while(|&&b| self.classes[b as usize] & KIND == SPACE)
                                    .count();
                            if next >= n {
                                break;
                            }
                            match self.scan_segment(text, next) {
                                Scan::Added => {
                                    out.truncate(base);
                                    return Ok(false);
                                }
                                Scan::Segment { end: e, covered: false } => end = e,
                                Scan::Segment { covered: true, .. } => break,
                            }
                        }
                        word.clear();
                        out.truncate(seg_out);
                        slow(&text[seg_start..end], out)?;
                        i = end;
                    }
                }
            }
        }
        self.flush(&mut word, out);
        Ok(true)
    }

    /// Scans the segment part `text[from..]` up to the next ASCII whitespace: whether the
    /// fast path covers it, or whether an added token starts in it.
    fn scan_segment(&self, text: &str, from: usize) -> Scan {
        let bytes = text.as_bytes();
        let mut covered = true;
        let mut j = from;
        while j < bytes.len() {
            let class = self.classes[bytes[j] as usize];
            if class & ADDED != 0 && self.added_at(&bytes[j..]) {
                return Scan::Added;
            }
            match class & KIND {
                SPACE => break,
                NON_ASCII => {
                    let c = text[j..].chars().next().unwrap_or(char::REPLACEMENT_CHARACTER);
                    covered &= is_plain_punct(c);
                    j += c.len_utf8();
                }
                _ => j += 1,
            }
        }
        Scan::Segment { end: j, covered }
    }

    #[inline]
    fn flush(&self, word: &mut Vec<u8>, out: &mut Vec<u32>) {
        if !word.is_empty() {
            self.push_word(word, word.len(), out);
            word.clear();
        }
    }

    /// WordPiece of one word (`chars` characters): greedy longest-match-first; one `[UNK]`
    /// for a word that is too long or has a piece no entry matches.
    fn push_word(&self, word: &[u8], chars: usize, out: &mut Vec<u32>) {
        if chars > self.max_word_chars {
            out.push(self.unk);
            return;
        }
        let mark = out.len();
        let mut start = 0;
        while start < word.len() {
            let (map, longest) = if start == 0 {
                (&self.vocab, self.longest)
            } else {
                (&self.continuation, self.longest_continuation)
            };
            // slices that end inside a multi-byte character are not UTF-8, so they match no
            // entry: stepping back one byte at a time tries the same candidates as stepping
            // back one character
            let mut end = word.len().min(start + longest);
            loop {
                if end <= start {
                    out.truncate(mark);
                    out.push(self.unk);
                    return;
                }
                if let Some(&id) = map.get(&word[start..end]) {
                    out.push(id);
                    start = end;
                    break;
                }
                end -= 1;
            }
        }
    }
}

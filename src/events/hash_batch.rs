//! Many blake3 hashes at once, each equal to `blake3::hash` of its message.
//!
//! A backtest hashes every event's payload (a few hundred bytes each) for its chain
//! digest. blake3 hashes a short message one 64-byte block after another, and its SIMD
//! kernels sit idle: they only run side by side the chunks of one long message. Yet
//! blocks of *different* messages are just as independent, so here the crate's own
//! kernel (`Platform::hash_many`, 4 to 16 lanes) compresses the whole blocks of many
//! messages together, grouped by block count, and each message's last block is
//! compressed alone. In the LEAN backtest that halves the digest's hashing time.
//!
//! `blake3::platform` is public but undocumented ("for benchmarks only"), so the crate
//! is pinned to one version in Cargo.toml, and the tests compare every path here with
//! `blake3::hash`: a changed kernel fails them, never the digests silently.

use blake3::platform::{le_bytes_from_words_32, words_from_le_bytes_32, Platform};
use blake3::{Hash, IncrementCounter, BLOCK_LEN, CHUNK_LEN, OUT_LEN};

/// BLAKE3's initial chaining value and domain flags (the specification's constants).
const IV: [u32; 8] = [
    0x6A09E667, 0xBB67AE85, 0x3C6EF372, 0xA54FF53A, 0x510E527F, 0x9B05688C, 0x1F83D9AB, 0x5BE0CD19,
];
const CHUNK_START: u8 = 1;
const CHUNK_END: u8 = 2;
const PARENT: u8 = 4;
const ROOT: u8 = 8;
/// Whole blocks a chunk can have before its last block.
const MAX_LEADING_BLOCKS: usize = CHUNK_LEN / BLOCK_LEN - 1;

/// Hashes batches of messages; keeps its scratch space between batches.
pub struct BatchHasher {
    platform: Platform,
    /// Chunk positions by how many whole blocks precede their last block.
    by_blocks: [Vec<usize>; MAX_LEADING_BLOCKS + 1],
    lanes_out: Vec<u8>,
}

impl Default for BatchHasher {
    fn default() -> Self {
        Self::new()
    }
}

impl BatchHasher {
    pub fn new() -> Self {
        Self {
            platform: Platform::detect(),
            by_blocks: Default::default(),
            lanes_out: Vec::new(),
        }
    }

    /// `out[i]` = `blake3::hash(messages[i])`. Messages of one or two chunks (up to
    /// 2 KiB) share the SIMD lanes; longer ones are hashed alone.
    pub fn hash_all(&mut self, messages: &[&[u8]], out: &mut Vec<Hash>) {
        out.clear();
        out.resize(messages.len(), Hash::from_bytes([0; OUT_LEN]));
        let (mut one, mut two): (Vec<usize>, Vec<usize>) = (Vec::new(), Vec::new());
        for (i, m) in messages.iter().enumerate() {
            match m.len() {
                1..=CHUNK_LEN => one.push(i),
                n if (CHUNK_LEN + 1..=2 * CHUNK_LEN).contains(&n) => two.push(i),
                // Empty (a lone block of length 0), or three chunks and more.
                _ => out[i] = blake3::hash(m),
            }
        }

        // One chunk: the chunk is the root, its chaining value the hash.
        let chunks: Vec<&[u8]> = one.iter().map(|&i| messages[i]).collect();
        let mut cvs = Vec::new();
        self.chunk_cvs(&chunks, 0, ROOT, &mut cvs);
        for (&i, cv) in one.iter().zip(&cvs) {
            out[i] = Hash::from_bytes(le_bytes_from_words_32(cv));
        }

        // Two chunks: a full first chunk and a second, then their parent as the root.
        if two.is_empty() {
            return;
        }
        let firsts: Vec<&[u8; CHUNK_LEN]> = two
            .iter()
            .filter_map(|&i| messages[i][..CHUNK_LEN].try_into().ok())
            .collect();
        hash_lanes(&self.platform, &firsts, 0, CHUNK_END, &mut self.lanes_out);
        let first_cvs = std::mem::take(&mut self.lanes_out);
        let seconds: Vec<&[u8]> = two.iter().map(|&i| &messages[i][CHUNK_LEN..]).collect();
        self.chunk_cvs(&seconds, 1, 0, &mut cvs);
        for (j, &i) in two.iter().enumerate() {
            let mut parent = [0u8; BLOCK_LEN];
            parent[..OUT_LEN].copy_from_slice(&first_cvs[j * OUT_LEN..(j + 1) * OUT_LEN]);
            parent[OUT_LEN..].copy_from_slice(&le_bytes_from_words_32(&cvs[j]));
            let mut cv = IV;
            self.platform
                .compress_in_place(&mut cv, &parent, BLOCK_LEN as u8, 0, PARENT | ROOT);
            out[i] = Hash::from_bytes(le_bytes_from_words_32(&cv));
        }
        self.lanes_out = first_cvs;
    }

    /// Chaining values of `chunks` (each 1 to 1024 bytes, all at chunk index
    /// `counter`), with `end_flags` on each last block (`ROOT` for a whole message).
    fn chunk_cvs(
        &mut self,
        chunks: &[&[u8]],
        counter: u64,
        end_flags: u8,
        cvs: &mut Vec<[u32; 8]>,
    ) {
        cvs.clear();
        cvs.resize(chunks.len(), IV);
        for group in &mut self.by_blocks {
            group.clear();
        }
        for (j, c) in chunks.iter().enumerate() {
            self.by_blocks[(c.len() - 1) / BLOCK_LEN].push(j);
        }
        macro_rules! leading_blocks {
            ($($blocks:literal)*) => {$(
                self.leading::<{ $blocks * BLOCK_LEN }>($blocks, chunks, counter, cvs);
            )*};
        }
        leading_blocks!(1 2 3 4 5 6 7 8 9 10 11 12 13 14 15);
        for (blocks, group) in self.by_blocks.iter().enumerate() {
            let start = if blocks == 0 { CHUNK_START } else { 0 };
            for &j in group {
                let rest = &chunks[j][blocks * BLOCK_LEN..];
                let mut block = [0u8; BLOCK_LEN];
                block[..rest.len()].copy_from_slice(rest);
                self.platform.compress_in_place(
                    &mut cvs[j],
                    &block,
                    rest.len() as u8,
                    counter,
                    start | CHUNK_END | end_flags,
                );
            }
        }
    }

    /// The `N`-byte leading blocks of the chunks with `blocks` whole blocks before their
    /// last, side by side: their chaining values go to `cvs`.
    fn leading<const N: usize>(
        &mut self,
        blocks: usize,
        chunks: &[&[u8]],
        counter: u64,
        cvs: &mut [[u32; 8]],
    ) {
        let group = &self.by_blocks[blocks];
        if group.is_empty() {
            return;
        }
        let inputs: Vec<&[u8; N]> = group
            .iter()
            .filter_map(|&j| chunks[j][..N].try_into().ok())
            .collect();
        hash_lanes(&self.platform, &inputs, counter, 0, &mut self.lanes_out);
        for (k, &j) in group.iter().enumerate() {
            let bytes: &[u8; OUT_LEN] = self.lanes_out[k * OUT_LEN..(k + 1) * OUT_LEN]
                .try_into()
                .unwrap_or(&[0; OUT_LEN]);
            cvs[j] = words_from_le_bytes_32(bytes);
        }
    }
}

/// Chaining values of `inputs` (whole blocks from the start of a chunk, every one at
/// chunk index `counter`), side by side; `flags_end` on each one's last block. They go
/// to `out`, `OUT_LEN` bytes each, in order.
fn hash_lanes<const N: usize>(
    platform: &Platform,
    inputs: &[&[u8; N]],
    counter: u64,
    flags_end: u8,
    out: &mut Vec<u8>,
) {
    out.clear();
    out.resize(inputs.len() * OUT_LEN, 0);
    platform.hash_many(
        inputs,
        &IV,
        counter,
        IncrementCounter::No,
        0,
        CHUNK_START,
        flags_end,
        out,
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};

    fn message(len: usize, seed: usize) -> Vec<u8> {
        (0..len).map(|i| (i * 31 + seed * 7 + len) as u8).collect()
    }

    fn check(messages: &[Vec<u8>]) {
        let refs: Vec<&[u8]> = messages.iter().map(Vec::as_slice).collect();
        let mut out = Vec::new();
        BatchHasher::new().hash_all(&refs, &mut out);
        assert_eq!(out.len(), messages.len());
        for (m, h) in messages.iter().zip(&out) {
            assert_eq!(*h, blake3::hash(m), "length {}", m.len());
        }
    }

    /// Every length from empty to past two chunks, alone: each path (one block, leading
    /// blocks, two chunks, longer) and each block boundary.
    #[test]
    fn every_length_hashes_as_blake3_does() {
        for len in 0..=2 * CHUNK_LEN + 130 {
            check(&[message(len, 1)]);
        }
    }

    /// Mixed batches, larger than the widest SIMD degree in every group, in random
    /// order; the scratch space reused from batch to batch.
    #[test]
    fn mixed_batches_hash_as_blake3_does() {
        let mut rng = StdRng::seed_from_u64(11);
        let mut hasher = BatchHasher::new();
        let mut out = Vec::new();
        for round in 0..20 {
            let messages: Vec<Vec<u8>> = (0..rng.random_range(0..600))
                .map(|i| message(rng.random_range(0..2 * CHUNK_LEN + 300), round * 1000 + i))
                .collect();
            let refs: Vec<&[u8]> = messages.iter().map(Vec::as_slice).collect();
            hasher.hash_all(&refs, &mut out);
            for (m, h) in messages.iter().zip(&out) {
                assert_eq!(*h, blake3::hash(m), "round {round}, length {}", m.len());
            }
        }
    }
}

//! Compiling a pattern set: the q-gram prefilter and its confirming automata (sharded
//! and built in parallel for large sets), the direct automaton for small ones, the
//! short-pattern automaton and the prefix index.

#[allow(clippy::wildcard_imports)]
use super::*;

/// Builds the prefilter, the confirming automata and the prefix index over `bytes`
/// (pattern `i` is `bytes[i]`).
pub(super) fn compile(bytes: &[Arc<[u8]>], tuning: BuildTuning) -> Result<Core, MaskError> {
    let build_err = |e: aho_corasick::BuildError| MaskError::Build(e.to_string());
    let (long_ids, short_ids): (Vec<u32>, Vec<u32>) =
        (0..bytes.len() as u32).partition(|&i| bytes[i as usize].len() >= Q);
    let long = if long_ids.is_empty() {
        None
    } else {
        let min = long_ids.iter().map(|&i| bytes[i as usize].len()).min().unwrap_or(Q);
        let stride = QGramFilter::stride_for(min, long_ids.len());
        let mut filter =
            QGramFilter::new(long_ids.iter().map(|&i| (i, &*bytes[i as usize])), stride, tuning.compare_max)?;
        // The confirming automata hold only the crowded patterns: a start with at most
        // `compare_max` candidates is confirmed by comparing bytes, and the candidates of
        // one start are every pattern that can occur there (prefilter.rs), so a start
        // with more holds crowded patterns only. Random secrets make no crowd, and
        // the automata over all of them were half of the masker's memory
        // (docs/performance.md, "Cost per call").
        let crowded = filter.take_crowded();
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get()).min(8);
        let shard_count = crowded.len().div_ceil(SHARD_PATTERNS).min(threads).max(1);
        let per_shard = crowded.len().div_ceil(shard_count).max(1);
        let build_shard = |ids: Vec<u32>| -> Result<(AhoCorasick, Vec<u32>), MaskError> {
            let ac = AhoCorasick::builder()
                .match_kind(MatchKind::LeftmostLongest)
                .kind(if ids.len() <= 64 { Some(AhoCorasickKind::DFA) } else { Some(AhoCorasickKind::ContiguousNFA) })
                .start_kind(StartKind::Anchored)
                .prefilter(false)
                .build(ids.iter().map(|&i| &*bytes[i as usize]))
                .map_err(build_err)?;
            Ok((ac, ids))
        };
        let shards = std::thread::scope(|scope| {
            let handles: Vec<_> = crowded
                .chunks(per_shard)
                .map(|ids| {
                    let ids = ids.to_vec();
                    scope.spawn(move || build_shard(ids))
                })
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().unwrap_or_else(|_| Err(MaskError::Build("a build thread panicked".into()))))
                .collect::<Result<Vec<_>, _>>()
        })?;
        // A handful of short patterns: Aho-Corasick's own literal prefilter (Teddy)
        // over the whole input beats probing every few bytes.
        let direct = if tuning.allow_direct && long_ids.len() <= DIRECT_MAX_PATTERNS && stride < DIRECT_MIN_STRIDE {
            let ac = AhoCorasick::builder()
                .match_kind(MatchKind::LeftmostLongest)
                .build(long_ids.iter().map(|&i| &*bytes[i as usize]))
                .map_err(build_err)?;
            Some((ac, long_ids.clone()))
        } else {
            None
        };
        Some(LongSet { filter, shards, direct, compare_max: tuning.compare_max })
    };
    let short = if short_ids.is_empty() {
        None
    } else {
        let ac = AhoCorasick::builder()
            .match_kind(MatchKind::LeftmostLongest)
            .build(short_ids.iter().map(|&i| &*bytes[i as usize]))
            .map_err(build_err)?;
        Some(ShortSet { ac, ids: short_ids })
    };
    let max_len = bytes.iter().map(|b| b.len()).max().unwrap_or(0);
    Ok(Core { long, short, prefixes: PrefixIndex::new(bytes.to_vec()), max_len })
}

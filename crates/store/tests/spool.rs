//! The usage spool: everything appended reaches the store exactly once, across crashes at any
//! point (torn writes, a crash between commit and delete), and corruption is kept, not lost.

use goodhart_core::Micros;
use goodhart_core::Nanos;
use goodhart_core::fingerprint::Fingerprints;
use goodhart_core::pricing::CostBreakdown;
use goodhart_core::usage::{Attribution, CallMeta, Source, TokenCounts, UsageEvent};
use goodhart_store::spool::{Spool, SpooledEvent, flush, read_segment};
use goodhart_store::testing::TestDatabase;

fn record(i: u64) -> SpooledEvent {
    SpooledEvent {
        event: UsageEvent {
            id: format!("gw-{i}"),
            timestamp: Micros(1_795_000_000_000_000 + i as i64),
            attribution: Attribution {
                user: "alice".into(),
                agent: Some("bot".into()),
                ..Default::default()
            },
            provider: Some("anthropic".into()),
            model: "claude-sonnet-4-5".into(),
            tokens: TokenCounts {
                input: 100 + i,
                output: 10,
                ..Default::default()
            },
            finish_reason: Some("end_turn".into()),
            fingerprints: Fingerprints {
                prompt_simhash: Some(u64::MAX - i),
                ..Default::default()
            },
            content: None,
            source: Source::Gateway,
            estimated: i.is_multiple_of(7),
            call: Some(CallMeta {
                key_id: "k1".into(),
                endpoint: "messages".into(),
                status: 200,
                stream: true,
                latency_micros: 1_000 + i,
                ttft_micros: Some(500),
                max_tokens: Some(1024),
                upstream_request_id: Some(format!("req_{i}")),
                response_id: Some(format!("msg_{i}")),
                client_disconnected: false,
            }),
        },
        cost: Some(CostBreakdown {
            input: Nanos(300 * (100 + i as i64)),
            output: Nanos(150),
            ..Default::default()
        }),
        price_version: if i.is_multiple_of(2) { "v1".into() } else { "v2".into() },
    }
}

#[tokio::test]
async fn appended_events_reach_the_store_once_and_segments_go_away() {
    let dir = tempfile::tempdir().unwrap();
    let db = TestDatabase::sqlite();
    let store = db.open().await.unwrap();
    let mut spool = Spool::open(dir.path()).unwrap();
    let records: Vec<SpooledEvent> = (0..50).map(record).collect();
    spool.append(&records[..20]).unwrap();
    spool.append(&records[20..]).unwrap();
    assert!(spool.sealed().unwrap().is_empty(), "the active segment is not flushed");
    spool.seal().unwrap();
    let outcome = flush(spool.sealed().unwrap(), store.as_ref()).await.unwrap();
    assert_eq!((outcome.segments, outcome.inserted, outcome.duplicates), (1, 50, 0));
    assert!(spool.sealed().unwrap().is_empty());
    assert_eq!(store.event_count().await.unwrap(), 50);
    assert_eq!(
        read_segment(&dir.path().join("segment-00000000000000000001.log"))
            .unwrap()
            .records
            .len(),
        0
    );
}

#[tokio::test]
async fn a_crash_between_commit_and_delete_counts_nothing_twice() {
    let dir = tempfile::tempdir().unwrap();
    let db = TestDatabase::sqlite();
    let store = db.open().await.unwrap();
    let records: Vec<SpooledEvent> = (0..10).map(record).collect();
    {
        let mut spool = Spool::open(dir.path()).unwrap();
        spool.append(&records).unwrap();
    } // the process dies here: the segment was never sealed
    let spool = Spool::open(dir.path()).unwrap();
    let sealed = spool.sealed().unwrap();
    assert_eq!(sealed.len(), 1, "a restart seals what the previous run left");
    let saved = std::fs::read(&sealed[0]).unwrap();
    flush(sealed.clone(), store.as_ref()).await.unwrap();
    std::fs::write(&sealed[0], saved).unwrap(); // as if the delete had not happened
    let replay = flush(spool.sealed().unwrap(), store.as_ref()).await.unwrap();
    assert_eq!((replay.inserted, replay.duplicates), (0, 10));
    assert_eq!(store.event_count().await.unwrap(), 10);
}

#[test]
fn a_segment_cut_anywhere_reads_as_a_prefix_of_its_records() {
    let dir = tempfile::tempdir().unwrap();
    let records: Vec<SpooledEvent> = (0..4).map(record).collect();
    let mut spool = Spool::open(dir.path()).unwrap();
    spool.append(&records).unwrap();
    let path = dir.path().join("segment-00000000000000000000.log");
    let bytes = std::fs::read(&path).unwrap();
    let boundaries = boundaries(&bytes);
    assert_eq!(boundaries.len(), 5);
    let cut_path = dir.path().join("cut.bin");
    for cut in 0..=bytes.len() {
        std::fs::write(&cut_path, &bytes[..cut]).unwrap();
        let contents = read_segment(&cut_path).unwrap();
        let complete = boundaries.iter().filter(|b| **b <= cut).count() - 1;
        assert_eq!(contents.records, records[..complete], "cut at {cut}");
        assert_eq!(
            contents.corrupt_bytes, 0,
            "a torn tail is not corruption (cut at {cut})"
        );
        assert_eq!(contents.torn_tail, !boundaries.contains(&cut), "cut at {cut}");
    }
}

#[tokio::test]
async fn corruption_keeps_the_segment_aside_and_stores_what_precedes_it() {
    let dir = tempfile::tempdir().unwrap();
    let db = TestDatabase::sqlite();
    let store = db.open().await.unwrap();
    let mut spool = Spool::open(dir.path()).unwrap();
    spool.append(&(0..3).map(record).collect::<Vec<_>>()).unwrap();
    spool.seal().unwrap();
    let path = spool.sealed().unwrap().remove(0);
    let mut bytes = std::fs::read(&path).unwrap();
    let len = bytes.len();
    bytes[len - 5] ^= 0xff; // inside the last record's JSON: its checksum fails
    std::fs::write(&path, bytes).unwrap();
    let outcome = flush(spool.sealed().unwrap(), store.as_ref()).await.unwrap();
    assert_eq!((outcome.inserted, outcome.corrupt_segments), (2, 1));
    assert!(
        path.with_extension("corrupt").exists(),
        "corrupt data is kept for a person to inspect"
    );
    assert!(spool.sealed().unwrap().is_empty());
}

/// The byte offsets where each record of a segment starts, and its end.
fn boundaries(bytes: &[u8]) -> Vec<usize> {
    let (mut at, mut start) = (vec![0usize], 0usize);
    while let Some(&[l0, l1, l2, l3]) = bytes.get(start..start + 4) {
        start += 8 + u32::from_le_bytes([l0, l1, l2, l3]) as usize;
        at.push(start);
    }
    at
}

#[test]
fn damage_in_the_middle_loses_only_the_damaged_record() {
    let dir = tempfile::tempdir().unwrap();
    let records: Vec<SpooledEvent> = (0..5).map(record).collect();
    let mut spool = Spool::open(dir.path()).unwrap();
    spool.append(&records).unwrap();
    let path = dir.path().join("segment-00000000000000000000.log");
    let bytes = std::fs::read(&path).unwrap();
    let at = boundaries(&bytes);
    let damaged_path = dir.path().join("damaged.bin");

    // A flipped byte inside the second record's JSON: its checksum fails.
    let mut flipped = bytes.clone();
    flipped[at[1] + 20] ^= 0xff;
    std::fs::write(&damaged_path, &flipped).unwrap();
    let contents = read_segment(&damaged_path).unwrap();
    let expected: Vec<_> = [0, 2, 3, 4].iter().map(|&i| records[i].clone()).collect();
    assert_eq!(contents.records, expected);
    assert_eq!(contents.corrupt_bytes, (at[2] - at[1]) as u64);
    assert!(!contents.torn_tail);

    // A write that failed half-way through the third record, then later appends.
    let mut torn = bytes[..at[2] + (at[3] - at[2]) / 2].to_vec();
    torn.extend_from_slice(&bytes[at[3]..]);
    std::fs::write(&damaged_path, &torn).unwrap();
    let contents = read_segment(&damaged_path).unwrap();
    let expected: Vec<_> = [0, 1, 3, 4].iter().map(|&i| records[i].clone()).collect();
    assert_eq!(contents.records, expected, "the records after a torn one are read");
    assert_eq!(contents.corrupt_bytes, ((at[3] - at[2]) / 2) as u64);
    assert!(
        !contents.torn_tail,
        "a tear followed by records is damage, not a torn tail"
    );

    // A garbage length field (an impossible size) in the fourth record.
    let mut garbage = bytes.clone();
    garbage[at[3]..at[3] + 4].copy_from_slice(&u32::MAX.to_le_bytes());
    std::fs::write(&damaged_path, &garbage).unwrap();
    let contents = read_segment(&damaged_path).unwrap();
    let expected: Vec<_> = [0, 1, 2, 4].iter().map(|&i| records[i].clone()).collect();
    assert_eq!(contents.records, expected);
    assert_eq!(contents.corrupt_bytes, (at[4] - at[3]) as u64);
}

#[test]
fn one_spool_directory_serves_one_process_at_a_time() {
    let dir = tempfile::tempdir().unwrap();
    let first = Spool::open(dir.path()).unwrap();
    let second = Spool::open(dir.path());
    let message = second.err().expect("a second opener is refused").to_string();
    assert!(message.contains("in use by another running goodhart"), "{message}");
    drop(first);
    assert!(Spool::open(dir.path()).is_ok(), "the lock goes with the spool");
}

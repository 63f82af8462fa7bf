//! A durable, append-only spool of priced usage events.
//!
//! The gateway appends each call's usage here (and fsyncs) before the response completes, and a
//! flusher moves sealed segments into the store, deleting a segment only after its events are
//! committed. A crash at any point loses nothing: segments left on disk are replayed at start,
//! and replaying events the store already has is harmless because inserts are idempotent by
//! event id — so every call is counted exactly once.
//!
//! A segment is a sequence of records `[u32 length][u32 CRC-32][JSON]` (little-endian). A
//! record cut short by a crash (a torn tail) is ignored: its call had not been acknowledged. A
//! record whose checksum fails, or one cut short in the middle (a write that failed half-way),
//! is corruption: the records after it are still read and stored, and the segment is kept,
//! renamed `*.corrupt`, for a person to inspect, and never deleted.
//!
//! A failed append (ENOSPC, EIO) may have written part of its records: the segment is cut back
//! to the end of the last whole record before anything else is appended, so the failure leaves
//! no damage behind for the reader to skip.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use goodhart_core::pricing::CostBreakdown;
use goodhart_core::usage::UsageEvent;
use serde::{Deserialize, Serialize};

use crate::{PricedEvent, Store, StoreError};

/// Seal the active segment once it holds this many bytes.
const SEGMENT_BYTES: u64 = 8 * 1024 * 1024;
/// A record longer than this cannot be genuine (it would be a corrupt length field).
const MAX_RECORD_BYTES: u32 = 64 * 1024 * 1024;

/// One spooled call: the event, its cost and the price-table version that priced it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SpooledEvent {
    pub event: UsageEvent,
    pub cost: Option<CostBreakdown>,
    pub price_version: String,
}

#[derive(Debug, thiserror::Error)]
pub enum SpoolError {
    #[error("spool {path}: {source}")]
    Io { path: PathBuf, source: io::Error },
    #[error("spool: {0}")]
    Store(#[from] StoreError),
}

fn io_error(path: &Path) -> impl FnOnce(io::Error) -> SpoolError + '_ {
    move |source| SpoolError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// The writer side: one active segment, appended to and synced.
pub struct Spool {
    /// Held (locked) for as long as the spool is open: one process per spool directory.
    _lock: File,
    dir: PathBuf,
    active: File,
    active_path: PathBuf,
    active_seq: u64,
    active_bytes: u64,
    /// An append failed: the active segment may end in part of a record, to be cut off (back to
    /// `active_bytes`) before the next append.
    torn: bool,
}

fn segment_path(dir: &Path, seq: u64) -> PathBuf {
    dir.join(format!("segment-{seq:020}.log"))
}

fn segment_seq(path: &Path) -> Option<u64> {
    path.file_name()?
        .to_str()?
        .strip_prefix("segment-")?
        .strip_suffix(".log")?
        .parse()
        .ok()
}

impl Spool {
    /// Opens the spool in `dir` (created if needed). Segments already there — from a previous
    /// run — are sealed and wait for [`flush`]; appends go to a new segment.
    pub fn open(dir: &Path) -> Result<Spool, SpoolError> {
        fs::create_dir_all(dir).map_err(io_error(dir))?;
        let lock_path = dir.join("LOCK");
        let lock = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(io_error(&lock_path))?;
        lock.try_lock().map_err(|_| SpoolError::Io {
            path: dir.to_path_buf(),
            source: io::Error::other("in use by another running goodhart; give each instance its own spool directory"),
        })?;
        let next = segments(dir)?.last().and_then(|p| segment_seq(p)).map_or(0, |s| s + 1);
        let active_path = segment_path(dir, next);
        let active = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&active_path)
            .map_err(io_error(&active_path))?;
        Ok(Spool {
            _lock: lock,
            dir: dir.to_path_buf(),
            active,
            active_path,
            active_seq: next,
            active_bytes: 0,
            torn: false,
        })
    }

    /// Appends records with one `write`: from then on they survive the process being killed
    /// (they are in the kernel's page cache); [`Spool::sync`] makes them survive a power loss
    /// too. Seals the segment when it is full.
    pub fn append(&mut self, records: &[SpooledEvent]) -> Result<(), SpoolError> {
        let mut buffer = Vec::with_capacity(records.len() * 512);
        for record in records {
            let json = serde_json::to_vec(record).map_err(|e| SpoolError::Io {
                path: self.active_path.clone(),
                source: io::Error::other(e),
            })?;
            let mut crc = flate2::Crc::new();
            crc.update(&json);
            buffer.extend_from_slice(&(json.len() as u32).to_le_bytes());
            buffer.extend_from_slice(&crc.sum().to_le_bytes());
            buffer.extend_from_slice(&json);
        }
        self.cut_torn_record()?;
        if let Err(e) = self.active.write_all(&buffer) {
            self.torn = true;
            // At once if the disk lets us (cutting a file frees space); else before the next append.
            if let Err(cut) = self.cut_torn_record() {
                tracing::warn!("{cut}");
            }
            return Err(io_error(&self.active_path)(e));
        }
        self.active_bytes += buffer.len() as u64;
        if self.active_bytes >= SEGMENT_BYTES {
            self.seal()?;
        }
        Ok(())
    }

    /// After a failed append, cuts the active segment back to its last whole record.
    fn cut_torn_record(&mut self) -> Result<(), SpoolError> {
        if !self.torn {
            return Ok(());
        }
        self.active
            .set_len(self.active_bytes)
            .map_err(|source| SpoolError::Io {
                path: self.active_path.clone(),
                source: io::Error::new(
                    source.kind(),
                    format!("cutting off a partly written record failed: {source}"),
                ),
            })?;
        self.torn = false;
        Ok(())
    }

    /// Waits until everything appended to the active segment is on disk.
    pub fn sync(&self) -> Result<(), SpoolError> {
        self.active.sync_data().map_err(io_error(&self.active_path))
    }

    /// A second handle on the active segment, so a caller can sync it without holding the
    /// spool (appends go on meanwhile).
    pub fn active_handle(&self) -> Result<File, SpoolError> {
        self.active.try_clone().map_err(io_error(&self.active_path))
    }

    /// Closes the active segment (if it holds anything) so it can be flushed.
    pub fn seal(&mut self) -> Result<(), SpoolError> {
        self.cut_torn_record()?;
        if self.active_bytes == 0 {
            return Ok(());
        }
        let next = self.active_seq + 1;
        let path = segment_path(&self.dir, next);
        self.active = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(io_error(&path))?;
        (self.active_path, self.active_seq, self.active_bytes) = (path, next, 0);
        Ok(())
    }

    /// Sealed segments, oldest first.
    pub fn sealed(&self) -> Result<Vec<PathBuf>, SpoolError> {
        Ok(segments(&self.dir)?
            .into_iter()
            .filter(|p| *p != self.active_path)
            .collect())
    }

    /// Bytes waiting in the spool (for the spool-depth metric).
    pub fn depth_bytes(&self) -> Result<u64, SpoolError> {
        let sealed: u64 = self
            .sealed()?
            .iter()
            .filter_map(|p| p.metadata().ok())
            .map(|m| m.len())
            .sum();
        Ok(sealed + self.active_bytes)
    }
}

fn segments(dir: &Path) -> Result<Vec<PathBuf>, SpoolError> {
    let mut found: Vec<PathBuf> = fs::read_dir(dir)
        .map_err(io_error(dir))?
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|p| segment_seq(p).is_some())
        .collect();
    found.sort();
    Ok(found)
}

/// What a segment holds.
#[derive(Debug, Default)]
pub struct SegmentContents {
    pub records: Vec<SpooledEvent>,
    /// The last record was cut short (a crash while writing it): it was never acknowledged.
    pub torn_tail: bool,
    /// Bytes skipped as damaged: records that failed their checksum, could not be decoded, or
    /// were cut short with more records after them.
    pub corrupt_bytes: u64,
}

/// Reads every complete record of a segment. Past a record that fails its checksum or cannot
/// be decoded, or that is cut short with more bytes after it (a write that failed half-way, then
/// later appends), reading resumes at the next offset where a whole valid record starts: only
/// the damaged bytes are lost, and they are counted.
pub fn read_segment(path: &Path) -> Result<SegmentContents, SpoolError> {
    let bytes = fs::read(path).map_err(io_error(path))?;
    let mut contents = SegmentContents::default();
    let mut at = 0usize;
    while at < bytes.len() {
        let damage = match record_at(&bytes, at) {
            Read::Record(record, next) => {
                contents.records.push(*record);
                at = next;
                continue;
            }
            damage => damage,
        };
        let resumed = (at + 1..bytes.len()).find_map(|start| match record_at(&bytes, start) {
            Read::Record(record, next) => Some((start, record, next)),
            _ => None,
        });
        match (resumed, damage) {
            (Some((start, record, next)), _) => {
                contents.corrupt_bytes += (start - at) as u64;
                contents.records.push(*record);
                at = next;
            }
            (None, Read::CutShort) => {
                contents.torn_tail = true;
                break;
            }
            (None, _) => {
                contents.corrupt_bytes += (bytes.len() - at) as u64;
                break;
            }
        }
    }
    Ok(contents)
}

/// What is at one offset of a segment.
enum Read {
    /// A whole record, and the offset after it.
    Record(Box<SpooledEvent>, usize),
    /// The length field says the record runs past the end.
    CutShort,
    /// An impossible length, a checksum that fails or a payload that does not decode.
    Damaged,
}

fn record_at(bytes: &[u8], at: usize) -> Read {
    let Some(&[l0, l1, l2, l3, c0, c1, c2, c3]) = bytes.get(at..at + 8) else {
        return Read::CutShort;
    };
    let len = u32::from_le_bytes([l0, l1, l2, l3]);
    if len > MAX_RECORD_BYTES {
        return Read::Damaged;
    }
    let Some(payload) = bytes.get(at + 8..at + 8 + len as usize) else {
        return Read::CutShort;
    };
    // Every payload is a JSON object: a cheap test before the checksum, which keeps the search
    // for the next record after damage linear in practice.
    if payload.first() != Some(&b'{') || payload.last() != Some(&b'}') {
        return Read::Damaged;
    }
    let mut check = flate2::Crc::new();
    check.update(payload);
    let crc = u32::from_le_bytes([c0, c1, c2, c3]);
    match (check.sum() == crc)
        .then(|| serde_json::from_slice::<SpooledEvent>(payload).ok())
        .flatten()
    {
        Some(record) => Read::Record(Box::new(record), at + 8 + len as usize),
        None => Read::Damaged,
    }
}

/// What a flush did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct FlushOutcome {
    pub segments: u64,
    pub inserted: u64,
    /// Events the store already had (a replay after a crash between commit and delete).
    pub duplicates: u64,
    /// Calls whose record from another source (telemetry, an import) the gateway's replaced.
    pub superseded: u64,
    /// Segments kept aside as `*.corrupt`.
    pub corrupt_segments: u64,
}

/// Moves every sealed segment into the store, oldest first, deleting each once committed.
/// Stops at the first store error, leaving that segment and later ones for the next flush.
pub async fn flush(sealed: Vec<PathBuf>, store: &dyn Store) -> Result<FlushOutcome, SpoolError> {
    let mut outcome = FlushOutcome::default();
    for path in sealed {
        // Reading and decoding a segment of thousands of records takes milliseconds of CPU, and
        // file IO can block: neither on the runtime's workers, which serve calls meanwhile.
        let reading = path.clone();
        let contents = off_the_runtime(move || read_segment(&reading)).await?;
        // Events are stored per price-table version (the store records it per batch).
        let mut by_version: Vec<(String, Vec<PricedEvent>)> = Vec::new();
        for record in contents.records {
            let priced = PricedEvent {
                event: record.event,
                cost: record.cost,
            };
            match by_version.iter_mut().find(|(v, _)| *v == record.price_version) {
                Some((_, events)) => events.push(priced),
                None => by_version.push((record.price_version, vec![priced])),
            }
        }
        for (version, events) in by_version {
            let inserted = store.insert_usage(events, &version).await?;
            outcome.inserted += inserted.inserted;
            outcome.duplicates += inserted.duplicates;
            outcome.superseded += inserted.superseded;
        }
        let corrupt_bytes = contents.corrupt_bytes;
        // An unlink blocks until the filesystem has freed the blocks (a discard on SSDs).
        off_the_runtime(move || finish_segment(&path, corrupt_bytes)).await?;
        outcome.corrupt_segments += u64::from(corrupt_bytes > 0);
        outcome.segments += 1;
    }
    Ok(outcome)
}

/// Runs file work on tokio's blocking pool.
async fn off_the_runtime<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, SpoolError> + Send + 'static,
) -> Result<T, SpoolError> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| StoreError::Worker(e.to_string()))?
}

/// Deletes a segment whose records are stored, or keeps it, renamed, if part of it is corrupt.
fn finish_segment(path: &Path, corrupt_bytes: u64) -> Result<(), SpoolError> {
    if corrupt_bytes == 0 {
        return fs::remove_file(path).map_err(io_error(path));
    }
    let kept = path.with_extension("corrupt");
    tracing::error!(segment = %path.display(), corrupt_bytes, kept = %kept.display(),
        "spool segment is corrupt after its readable records; kept for inspection");
    fs::rename(path, &kept).map_err(io_error(path))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::SmallDisk;

    fn record(i: u64) -> SpooledEvent {
        crate::testing::spooled_event(format!("full-disk-{i}"), "m".repeat(200))
    }

    #[test]
    fn an_append_that_fails_on_a_full_disk_leaves_no_partial_record_behind() {
        let disk = match SmallDisk::mount(256 * 1024) {
            Ok(disk) => disk,
            Err(reason) => {
                eprintln!("skipped: {reason}");
                return;
            }
        };
        let mut spool = Spool::open(&disk.path().join("spool")).unwrap();
        // A page partly used before the disk fills: later appends go into the rest of it, until
        // one fails part-way.
        let mut appended = 3u64;
        spool.append(&(0..appended).map(record).collect::<Vec<_>>()).unwrap();
        disk.fill().unwrap();
        let failed = loop {
            assert!(appended < 10_000, "the disk never filled");
            match spool.append(&[record(appended)]) {
                Ok(()) => appended += 1,
                Err(e) => break e,
            }
        };
        assert!(failed.to_string().contains("No space left"), "{failed}");
        let path = spool.active_path.clone();
        assert_eq!(
            fs::metadata(&path).unwrap().len(),
            spool.active_bytes,
            "cut back to the last whole record"
        );
        disk.free().unwrap();
        spool.append(&[record(appended)]).unwrap();
        let contents = read_segment(&path).unwrap();
        assert_eq!(contents.records.len() as u64, appended + 1);
        assert_eq!((contents.corrupt_bytes, contents.torn_tail), (0, false));
    }
}

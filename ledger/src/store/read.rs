//! The read side of [`Ledger`]: entries, streams, checkpoints, proofs and the verification of a
//! tenant's whole log.

use super::*;

pub(super) struct TreeSource<'a> {
    pub(super) inner: &'a Inner,
    pub(super) tid: u32,
}

impl NodeSource<Hash32> for TreeSource<'_> {
    type Error = ReadError;
    fn node(&self, level: u32, index: u64) -> Result<Hash32, ReadError> {
        let value = self
            .inner
            .db
            .get_pinned_cf(self.inner.cf(CF_TREE), tree_key(self.tid, level, index))
            .map_err(ReadError::rocksdb_at_seq(index << level))?
            .ok_or_else(|| ReadError::Corrupted {
                seq: index << level,
                reason: format!("tree node ({level}, {index}) is missing"),
            })?;
        value.as_ref().try_into().map_err(|_| ReadError::Corrupted {
            seq: index << level,
            reason: format!("tree node ({level}, {index}) is not 32 bytes"),
        })
    }
}

impl Ledger {
    /// The tenants with at least one entry, sorted.
    pub fn tenants(&self) -> Vec<String> {
        let mut names: Vec<String> = self.inner.committed.read().tenants.keys().cloned().collect();
        names.sort();
        names
    }

    /// A tenant's id and committed head, or `UnknownTenant`.
    pub(super) fn tenant(&self, tenant: &str) -> Result<(u32, Head), ReadError> {
        let committed = self.inner.committed.read();
        let state = committed.tenants.get(tenant).ok_or_else(|| ReadError::UnknownTenant(tenant.to_owned()))?;
        Ok((state.tid, state.head))
    }

    /// The committed head of a tenant.
    pub fn head(&self, tenant: &str) -> Result<TenantHead, ReadError> {
        let (_, head) = self.tenant(tenant)?;
        Ok(TenantHead { size: head.size, chain_head: head.chain_head, last_recorded_at: head.last_recorded_at })
    }

    /// The entry at `seq`, hashes checked.
    pub fn entry(&self, tenant: &str, seq: u64) -> Result<Entry, ReadError> {
        let (tid, head) = self.tenant(tenant)?;
        if seq >= head.size {
            return Err(ReadError::OutOfRange(format!("seq {seq} is beyond the log end ({} entries)", head.size)));
        }
        read_entry(&self.inner, tid, seq)
    }

    /// The entry with this event id, if any.
    pub fn entry_by_event_id(&self, tenant: &str, event_id: &str) -> Result<Option<Entry>, ReadError> {
        let (tid, _) = self.tenant(tenant)?;
        let row = || format!("event id index row of {:?}", clip(event_id));
        match self
            .inner
            .db
            .get_pinned_cf(self.inner.cf(CF_EVENT_IDS), event_id_key(tid, event_id))
            .map_err(ReadError::rocksdb_at_row(row()))?
        {
            None => Ok(None),
            Some(value) => {
                let (seq, _) = decode_event_id_value(&value)
                    .map_err(|e| ReadError::CorruptedRow { row: row(), reason: e.to_string() })?;
                read_entry(&self.inner, tid, seq).map(Some)
            }
        }
    }

    /// Entries `from..to` (clamped to the committed size), in order, each hash-checked and
    /// linked to its predecessor.
    pub fn entries(&self, tenant: &str, from: u64, to: u64) -> Result<EntryIter<'_>, ReadError> {
        let (tid, head) = self.tenant(tenant)?;
        let to = to.min(head.size);
        let iter = self
            .inner
            .db
            .iterator_cf(self.inner.cf(CF_ENTRIES), IteratorMode::From(&seq_key(tid, from), Direction::Forward));
        Ok(EntryIter { iter, tid, next: from, end: to, prev_hash: None })
    }

    /// A stream's current version (0 if it has no events).
    pub fn stream_version(&self, tenant: &str, stream: &str) -> Result<u64, ReadError> {
        let (tid, _) = self.tenant(tenant)?;
        append::read_stream_version(&self.inner, tid, stream)
    }

    /// Up to `limit` events of `stream` from version `from_version` (versions count from 1),
    /// as `(version, entry)`.
    pub fn read_stream(
        &self,
        tenant: &str,
        stream: &str,
        from_version: u64,
        limit: usize,
    ) -> Result<Vec<(u64, Entry)>, ReadError> {
        let (tid, head) = self.tenant(tenant)?;
        let prefix = stream_prefix(tid, stream);
        let start = stream_key(tid, stream, from_version.max(1));
        let mut out = Vec::new();
        for item in self.inner.db.iterator_cf(self.inner.cf(CF_STREAMS), IteratorMode::From(&start, Direction::Forward))
        {
            let (key, value) =
                item.map_err(ReadError::rocksdb_at_row(format!("stream index of {:?}", clip(stream))))?;
            if !key.starts_with(&prefix) || out.len() >= limit {
                break;
            }
            let version = u64::from_be_bytes(key[prefix.len()..].try_into().map_err(|_| corrupt_index("stream key"))?);
            let seq = u64::from_be_bytes(value.as_ref().try_into().map_err(|_| corrupt_index("stream value"))?);
            if seq >= head.size {
                break;
            }
            out.push((version, read_entry(&self.inner, tid, seq)?));
        }
        Ok(out)
    }

    /// The newest signed checkpoint of a tenant (covers every committed entry).
    pub fn checkpoint(&self, tenant: &str) -> Result<SignedCheckpoint, ReadError> {
        let committed = self.inner.committed.read();
        let state = committed.tenants.get(tenant).ok_or_else(|| ReadError::UnknownTenant(tenant.to_owned()))?;
        Ok(state.checkpoint.clone())
    }

    /// The checkpoint signed at exactly `size`, if one was (one is signed per commit group).
    pub fn checkpoint_at(&self, tenant: &str, size: u64) -> Result<Option<SignedCheckpoint>, ReadError> {
        let (tid, _) = self.tenant(tenant)?;
        let stored = self
            .inner
            .db
            .get_cf(self.inner.cf(CF_CHECKPOINTS), seq_key(tid, size))
            .map_err(ReadError::rocksdb_at_seq(size.saturating_sub(1)))?;
        match stored {
            None => Ok(None),
            Some(bytes) => {
                let note = String::from_utf8(bytes).map_err(|_| ReadError::Corrupted {
                    seq: size.saturating_sub(1),
                    reason: "checkpoint is not UTF-8".into(),
                })?;
                SignedCheckpoint::parse_and_verify(&note, self.inner.roots.ledger())
                    .map(Some)
                    .map_err(|e| ReadError::Corrupted { seq: size.saturating_sub(1), reason: e.to_string() })
            }
        }
    }

    /// The Merkle root of the first `size` entries.
    pub fn root_at(&self, tenant: &str, size: u64) -> Result<Hash32, ReadError> {
        let (tid, head) = self.tenant(tenant)?;
        if size > head.size {
            return Err(ReadError::OutOfRange(format!("size {size} is beyond the log end ({} entries)", head.size)));
        }
        merkle::root_at::<LogHasher, _>(&TreeSource { inner: &self.inner, tid }, size)
    }

    /// An inclusion proof of `seq` in the tree of `tree_size` entries.
    pub fn inclusion_proof(&self, tenant: &str, seq: u64, tree_size: u64) -> Result<InclusionProof, ReadError> {
        let (tid, head) = self.tenant(tenant)?;
        if tree_size > head.size || seq >= tree_size {
            return Err(ReadError::OutOfRange(format!(
                "no seq {seq} in a tree of {tree_size} (log has {} entries)",
                head.size
            )));
        }
        let path = merkle::inclusion_path::<LogHasher, _>(&TreeSource { inner: &self.inner, tid }, seq, tree_size)
            .map_err(generate_error)?;
        Ok(InclusionProof { seq, tree_size, path })
    }

    /// A consistency proof between two tree sizes.
    pub fn consistency_proof(&self, tenant: &str, old_size: u64, new_size: u64) -> Result<ConsistencyProof, ReadError> {
        let (tid, head) = self.tenant(tenant)?;
        if old_size > new_size || new_size > head.size {
            return Err(ReadError::OutOfRange(format!(
                "no consistency from {old_size} to {new_size} (log has {} entries)",
                head.size
            )));
        }
        let path =
            merkle::consistency_path::<LogHasher, _>(&TreeSource { inner: &self.inner, tid }, old_size, new_size)
                .map_err(generate_error)?;
        Ok(ConsistencyProof { old_size, new_size, path })
    }

    /// The tenant's key registry, sorted by registration seq.
    pub fn key_records(&self, tenant: &str) -> Result<Vec<KeyRecord>, ReadError> {
        let committed = self.inner.committed.read();
        let state = committed.tenants.get(tenant).ok_or_else(|| ReadError::UnknownTenant(tenant.to_owned()))?;
        let mut records: Vec<KeyRecord> = state.keys.values().cloned().collect();
        records.sort_by_key(|r| r.registered_at);
        Ok(records)
    }

    /// A checkpoint covering exactly `size` entries, signed by the ledger key: the one stored
    /// for that size if a commit group ended there, otherwise signed now over the same tree.
    /// Exports of a range use it, so any `to` verifies against a signed root.
    pub fn checkpoint_covering(&self, tenant: &str, size: u64) -> Result<SignedCheckpoint, ReadError> {
        if let Some(stored) = self.checkpoint_at(tenant, size)? {
            return Ok(stored);
        }
        let root = self.root_at(tenant, size)?;
        Ok(sign_checkpoint(&self.inner, tenant, size, root))
    }

    /// The state a verifier has after seqs `0..size` (see [`ResumePoint`]): what an export of
    /// a range starting at `size` carries so that it verifies on its own.
    pub fn resume_point(&self, tenant: &str, size: u64) -> Result<ResumePoint, ReadError> {
        let (tid, head) = self.tenant(tenant)?;
        if size > head.size {
            return Err(ReadError::OutOfRange(format!("size {size} is beyond the log's {}", head.size)));
        }
        let (prev_hash, last_recorded_at) = self.link_before(tenant, size)?;
        let frontier = Frontier::<LogHasher>::load(&TreeSource { inner: &self.inner, tid }, size)?;
        // The registry as it stood before `size`: registered earlier, revoked only if earlier.
        let keys = self
            .key_records(tenant)?
            .into_iter()
            .filter(|r| r.registered_at < size)
            .map(|mut r| {
                r.revoked_at = r.revoked_at.filter(|&at| at < size);
                r
            })
            .collect();
        Ok(ResumePoint { size, prev_hash, last_recorded_at, frontier: frontier.hashes(), keys })
    }

    /// The entry hash and `recordedAt` of seq `size - 1` (genesis values for 0).
    fn link_before(&self, tenant: &str, size: u64) -> Result<(Hash32, u64), ReadError> {
        match size.checked_sub(1) {
            None => Ok((crate::hash::GENESIS_PREV_HASH, 0)),
            Some(last) => self.entry(tenant, last).map(|entry| (entry.entry_hash, entry.recorded_at)),
        }
    }

    /// Verifies a tenant's stored log, up to its newest signed checkpoint, against that
    /// checkpoint: every signature, the key registry at each seq, every chain link, the tree
    /// root. The error names the first bad seq. Safe to run while appends continue.
    pub fn verify_tenant(&self, tenant: &str) -> Result<VerifyReport, VerifyFailure> {
        let checkpoint = self.checkpoint(tenant).map_err(VerifyFailure::from_read)?;
        // Exactly the entries the checkpoint covers: appends committed after it was read are
        // the next checkpoint's business, not a verification failure.
        let entries = self.entries(tenant, 0, checkpoint.checkpoint.size).map_err(VerifyFailure::from_read)?;
        let mut verifier = Verifier::new(tenant, self.inner.roots, &self.inner.origin_prefix)
            .with_rules(self.inner.config.rules.clone());
        for entry in entries {
            match entry {
                Ok(entry) => verifier.push(entry)?,
                Err(error) => return Err(verifier.fail(VerifyFailure::from_read(error))),
            }
        }
        verifier.finish(Some(&checkpoint.note))
    }
}

fn generate_error(e: merkle::GenerateError<ReadError>) -> ReadError {
    match e {
        merkle::GenerateError::Proof(p) => ReadError::OutOfRange(p.to_string()),
        merkle::GenerateError::Source(s) => s,
    }
}

fn corrupt_index(what: &str) -> ReadError {
    ReadError::CorruptedRow { row: what.to_owned(), reason: "malformed".into() }
}

/// Entries in seq order; see [`Ledger::entries`].
pub struct EntryIter<'a> {
    iter: rocksdb::DBIteratorWithThreadMode<'a, DB>,
    tid: u32,
    next: u64,
    end: u64,
    prev_hash: Option<Hash32>,
}

impl fmt::Debug for EntryIter<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EntryIter").field("next", &self.next).field("end", &self.end).finish_non_exhaustive()
    }
}

impl Iterator for EntryIter<'_> {
    type Item = Result<Entry, ReadError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.next >= self.end {
            return None;
        }
        let seq = self.next;
        self.next += 1;
        let result = (|| {
            let (key, value) = match self.iter.next() {
                Some(item) => item.map_err(ReadError::rocksdb_at_seq(seq))?,
                None => return Err(ReadError::Corrupted { seq, reason: "entry is missing".into() }),
            };
            if key.get(..4) != Some(&self.tid.to_be_bytes()[..]) || seq_of_key(&key) != Some(seq) {
                return Err(ReadError::Corrupted { seq, reason: "entry is missing (seq gap)".into() });
            }
            let entry = decode_entry_value(seq, &value).map_err(|reason| ReadError::Corrupted { seq, reason })?;
            if let Some(prev) = self.prev_hash {
                if prev != entry.prev_hash {
                    return Err(ReadError::Corrupted {
                        seq,
                        reason: "prev hash does not link to the previous entry".into(),
                    });
                }
            }
            self.prev_hash = Some(entry.entry_hash);
            Ok(entry)
        })();
        if result.is_err() {
            self.next = self.end; // Stop after the first corruption.
        }
        Some(result)
    }
}

pub(crate) fn read_entry(inner: &Inner, tid: u32, seq: u64) -> Result<Entry, ReadError> {
    let value = inner
        .db
        .get_pinned_cf(inner.cf(CF_ENTRIES), seq_key(tid, seq))
        .map_err(ReadError::rocksdb_at_seq(seq))?
        .ok_or_else(|| ReadError::Corrupted { seq, reason: "entry is missing".into() })?;
    decode_entry_value(seq, &value).map_err(|reason| ReadError::Corrupted { seq, reason })
}

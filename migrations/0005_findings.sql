-- 0005: corpus-wide findings of `corpus check` beside the per-record verdicts of 0004:
-- duplicate groups with their kept representative, the MinHash signatures that let newly
-- ingested records be compared with the existing corpus, and the recurring sentences.

-- Members of exact-duplicate, near-duplicate and conflicting-answer groups under a configuration.
-- The representative (the record kept; the first ingested by default) is a member of its own group.
-- 'borderline': a pair just below the near-duplicate threshold, for review: record_id is the later
-- record, representative_id the earlier one (which has no row of its own for the pair).
CREATE TABLE duplicate_groups (
    config_hash       TEXT    NOT NULL REFERENCES check_configs (hash),
    kind              TEXT    NOT NULL CHECK (kind IN ('exact', 'near', 'conflict', 'borderline')),
    record_id         INTEGER NOT NULL REFERENCES records (id),
    representative_id INTEGER NOT NULL REFERENCES records (id),
    similarity        REAL,                          -- near, borderline: estimated Jaccard with the representative
    PRIMARY KEY (config_hash, kind, record_id)
) WITHOUT ROWID;
CREATE INDEX duplicate_groups_representative ON duplicate_groups (config_hash, kind, representative_id);

-- One MinHash signature per record and signature settings (n-gram size, permutations, seed),
-- as little-endian unsigned integers, one per permutation.
CREATE TABLE minhash_signatures (
    record_id     INTEGER NOT NULL REFERENCES records (id),
    settings_hash TEXT    NOT NULL,
    signature     BLOB    NOT NULL,
    PRIMARY KEY (record_id, settings_hash)
) WITHOUT ROWID;

-- Sentences that recur across many answers under a configuration, with in how many they occur.
CREATE TABLE boilerplate (
    config_hash TEXT    NOT NULL REFERENCES check_configs (hash),
    sentence    TEXT    NOT NULL,
    records     INTEGER NOT NULL,
    PRIMARY KEY (config_hash, sentence)
) WITHOUT ROWID;

-- 0004: quality check verdicts. Filters never delete: each check records a verdict per record
-- under the hash of the configuration that produced it, and snapshots select by verdicts.

-- A check configuration, by the hex SHA-256 of its canonical JSON (docs/QUALITY.md).
CREATE TABLE check_configs (
    hash       TEXT PRIMARY KEY,
    config     TEXT NOT NULL,
    created_at TEXT NOT NULL
);

-- One verdict per (record, check, configuration).
CREATE TABLE checks (
    record_id   INTEGER NOT NULL REFERENCES records (id),
    name        TEXT    NOT NULL,                    -- exact_duplicate, prompt_length, answer_length, pii, ...
    config_hash TEXT    NOT NULL REFERENCES check_configs (hash),
    passed      INTEGER NOT NULL CHECK (passed IN (0, 1)),
    score       REAL,                                -- the measured value, when there is one
    detail      TEXT    NOT NULL DEFAULT '',         -- why, e.g. "duplicate of record 12"
    PRIMARY KEY (record_id, name, config_hash)
) WITHOUT ROWID;
CREATE INDEX checks_config ON checks (config_hash, name, passed);

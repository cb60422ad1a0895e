-- 0003: snapshots (immutable, content-addressed dataset versions), withdrawals (removal
-- requests), and the training runs and adapters that the training issue fills in.

-- One row per snapshot version. `hash` is SHA-256 over the members' "content_hash split\n" lines
-- in position order (docs/SNAPSHOTS.md), so the same data gives the same hash on any machine.
CREATE TABLE snapshots (
    id           INTEGER PRIMARY KEY,
    name         TEXT    NOT NULL,
    version      INTEGER NOT NULL CHECK (version >= 1),
    parent_id    INTEGER REFERENCES snapshots (id),   -- the previous version of the same name
    hash         TEXT    NOT NULL,
    spec         TEXT    NOT NULL,                    -- JSON: how members were selected
    checks       TEXT,                                -- check configuration hash, NULL for none
    eval_ratio   REAL    NOT NULL,
    seed         INTEGER NOT NULL,
    records      INTEGER NOT NULL,
    train        INTEGER NOT NULL,
    eval         INTEGER NOT NULL,
    tag_counts   TEXT    NOT NULL,                    -- JSON: {"key=value": {"train": n, "eval": n}}
    excluded     TEXT    NOT NULL,                    -- JSON: candidates left out, by reason
    note         TEXT    NOT NULL DEFAULT '',
    created_at   TEXT    NOT NULL,
    tool_version TEXT    NOT NULL,
    UNIQUE (name, version)
);

-- The members of a snapshot, in order.
CREATE TABLE snapshot_records (
    snapshot_id  INTEGER NOT NULL REFERENCES snapshots (id),
    position     INTEGER NOT NULL,
    record_id    INTEGER NOT NULL REFERENCES records (id),
    content_hash TEXT    NOT NULL,                    -- the record's hash when the snapshot was made
    split        TEXT    NOT NULL CHECK (split IN ('train', 'eval')),
    PRIMARY KEY (snapshot_id, position)
) WITHOUT ROWID;
CREATE INDEX snapshot_records_record ON snapshot_records (record_id);

-- Snapshots never change: an auditor relies on it.
CREATE TRIGGER snapshots_no_update BEFORE UPDATE ON snapshots
BEGIN SELECT RAISE(ABORT, 'snapshots are immutable: create a new version instead'); END;
CREATE TRIGGER snapshots_no_delete BEFORE DELETE ON snapshots
BEGIN SELECT RAISE(ABORT, 'snapshots are immutable: they cannot be deleted'); END;
CREATE TRIGGER snapshot_records_no_update BEFORE UPDATE ON snapshot_records
BEGIN SELECT RAISE(ABORT, 'snapshots are immutable: create a new version instead'); END;
CREATE TRIGGER snapshot_records_no_delete BEFORE DELETE ON snapshot_records
BEGIN SELECT RAISE(ABORT, 'snapshots are immutable: they cannot be deleted'); END;

-- A removal request (for example a patient withdrawing consent). The record stays, with its
-- hash, so old snapshots can still be audited; its text is erased when `erased` is 1.
CREATE TABLE withdrawals (
    record_id    INTEGER PRIMARY KEY REFERENCES records (id),
    reason       TEXT    NOT NULL,
    requested_at TEXT    NOT NULL,
    erased       INTEGER NOT NULL CHECK (erased IN (0, 1))
);

-- A training run on a snapshot (filled in by `corpus train`).
CREATE TABLE runs (
    id           INTEGER PRIMARY KEY,
    snapshot_id  INTEGER NOT NULL REFERENCES snapshots (id),
    model_ref    TEXT    NOT NULL,                    -- model path or registered name
    model_sha256 TEXT    NOT NULL,                    -- fingerprint of the base model's weights
    config       TEXT    NOT NULL,                    -- JSON: the training configuration
    seed         INTEGER NOT NULL,
    status       TEXT    NOT NULL,                    -- running | finished | interrupted | failed
    started_at   TEXT    NOT NULL,
    finished_at  TEXT,
    tool_version TEXT    NOT NULL
);
CREATE INDEX runs_snapshot ON runs (snapshot_id);

-- An adapter written by a run.
CREATE TABLE adapters (
    id         INTEGER PRIMARY KEY,
    run_id     INTEGER NOT NULL REFERENCES runs (id),
    path       TEXT    NOT NULL,
    sha256     TEXT    NOT NULL,                      -- of adapter_model.safetensors
    created_at TEXT    NOT NULL
);
CREATE INDEX adapters_run ON adapters (run_id);

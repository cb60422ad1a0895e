-- 0007: what `corpus eval` records: one row per evaluation (the base model, and with --adapter the
-- adapter too, on the same items of one snapshot split) and one row per (item, model) with the
-- greedy answer and its scores (docs/EVAL.md).

CREATE TABLE evals (
    id             INTEGER PRIMARY KEY,
    snapshot_id    INTEGER NOT NULL REFERENCES snapshots (id),
    split          TEXT    NOT NULL,                  -- train | eval
    model_ref      TEXT    NOT NULL,                  -- the base model as the user named it
    model_sha256   TEXT    NOT NULL,                  -- fingerprint of the base model's weights
    adapter_path   TEXT,                              -- NULL: the base model alone was evaluated
    adapter_sha256 TEXT,                              -- of adapter_model.safetensors
    run_id         INTEGER REFERENCES runs (id),      -- the run that wrote the adapter, if on record
    config         TEXT    NOT NULL,                  -- JSON: limit, max_new_tokens, batch, max_len, template
    metrics        TEXT    NOT NULL,                  -- JSON: {"base": {...}, "adapter": {...}, "deltas": {...}}
    items          INTEGER NOT NULL,                  -- items evaluated (per model)
    created_at     TEXT    NOT NULL,
    tool_version   TEXT    NOT NULL,
    seconds        REAL    NOT NULL,
    CHECK ((adapter_path IS NULL) = (adapter_sha256 IS NULL))
);
CREATE INDEX evals_snapshot ON evals (snapshot_id);
CREATE INDEX evals_adapter ON evals (adapter_sha256);

-- One row per item and model: the record, the answer generated greedily, the teacher-forced loss
-- (mean nats per assistant token over the whole conversation) with its token count, and the
-- scores against the reference answer (docs/EVAL_METRICS.md).
CREATE TABLE eval_items (
    eval_id      INTEGER NOT NULL REFERENCES evals (id),
    model        TEXT    NOT NULL CHECK (model IN ('base', 'adapter')),
    position     INTEGER NOT NULL,                    -- order of the item in the evaluation
    record_id    INTEGER NOT NULL REFERENCES records (id),
    prediction   TEXT    NOT NULL,
    loss         REAL    NOT NULL,
    tokens       INTEGER NOT NULL,
    rouge_l      REAL    NOT NULL,
    bleu4        REAL    NOT NULL,
    exact_match  REAL    NOT NULL,
    length_ratio REAL    NOT NULL,
    PRIMARY KEY (eval_id, model, position)
) WITHOUT ROWID;
CREATE INDEX eval_items_record ON eval_items (record_id);

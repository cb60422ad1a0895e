-- 0008: what `corpus serve --log-requests` keeps (off by default: prompts may hold personal data).
-- One row per completion request that reached the decoder, written when it ended, with the
-- prompt and the answer after PII redaction (docs/SERVE.md). `corpus lineage adapter` counts an
-- adapter's rows by its SHA-256.

CREATE TABLE served_requests (
    id                INTEGER PRIMARY KEY,
    created_at        TEXT    NOT NULL,              -- when the request ended (UTC, ISO 8601)
    endpoint          TEXT    NOT NULL CHECK (endpoint IN ('chat', 'completion')),
    model_name        TEXT    NOT NULL,              -- the served name the client asked for
    model_sha256      TEXT    NOT NULL,              -- fingerprint of the base model's weights
    adapter_sha256    TEXT,                          -- of adapter_model.safetensors; NULL: the base model answered
    adapter_run       TEXT,                          -- the run that wrote the adapter, as the adapter or the store named it
    prompt            TEXT    NOT NULL,              -- as the model read it (rendered chat template), redacted
    answer            TEXT    NOT NULL,              -- as sent, redacted
    redactions        INTEGER NOT NULL,              -- personal-data spans replaced in prompt and answer
    prompt_tokens     INTEGER NOT NULL,
    completion_tokens INTEGER NOT NULL,
    outcome           TEXT    NOT NULL CHECK (outcome IN ('stop', 'length', 'cancelled', 'aborted', 'failed')),
    stream            INTEGER NOT NULL CHECK (stream IN (0, 1)),
    seconds           REAL    NOT NULL,              -- from arrival to end
    tool_version      TEXT    NOT NULL
);
CREATE INDEX served_requests_adapter ON served_requests (adapter_sha256);

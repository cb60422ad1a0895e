-- 0002: the model registry (`corpus models add|list|show`).
-- Shipped migrations are never edited; add a new numbered file instead (docs/STORE.md).

-- One row per registered base model. Training runs and adapters will reference models (id), so
-- ids are never reused (AUTOINCREMENT) and a row's identity never changes (trigger below).
CREATE TABLE models (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    name         TEXT    NOT NULL UNIQUE             -- what --model NAME and `models show` take;
                 CHECK (name <> '' AND name GLOB '*[^0-9]*' AND instr(name, '/') = 0), -- not all digits (ids are), no '/' (paths have one)
    path         TEXT    NOT NULL,                   -- absolute: the .gguf file or the Hugging Face folder
    format       TEXT    NOT NULL CHECK (format IN ('gguf', 'safetensors')),
    fingerprint  TEXT    NOT NULL CHECK (length(fingerprint) = 64), -- hex SHA-256 of the weight files (docs/STORE.md)
    architecture TEXT    NOT NULL,                   -- llama | qwen2 | mistral (general.architecture / model_type)
    parameters   INTEGER NOT NULL CHECK (parameters > 0), -- sum of the element counts of the weight tensors
    config       TEXT    NOT NULL DEFAULT '{}',      -- JSON: sizes, heads, vocab, tensor types (docs/STORE.md)
    added_at     TEXT    NOT NULL,                   -- ISO 8601 UTC
    tool_version TEXT    NOT NULL
);
CREATE INDEX models_fingerprint ON models (fingerprint);

-- What a model row identifies never changes: register the new weights under a new name instead.
CREATE TRIGGER models_identity_is_immutable
BEFORE UPDATE OF id, fingerprint, format, parameters ON models
BEGIN
    SELECT RAISE(ABORT, 'models: id, fingerprint, format and parameters never change; register the new weights with `corpus models add` under a new name');
END;

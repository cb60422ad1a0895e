-- 0012: verdicts packed one row per (configuration, record) instead of one row per check (issue 17).
-- A million records made fourteen million rows of `checks` (72 s to store, most of `corpus check`);
-- now they make a million rows of `verdicts`. Every record judged under a configuration still has
-- its row, so "has every record a verdict under this configuration" stays one query.
--
-- Configurations get a small integer id (a 64-character hash repeated in every verdict row was
-- most of its size); the hash stays their name everywhere else. Rebuilt as SQLite's ALTER TABLE
-- procedure describes (new table, copy, drop, rename); the other tables keep naming check_configs.
CREATE TABLE check_configs_new (
    id         INTEGER PRIMARY KEY,
    hash       TEXT    NOT NULL UNIQUE,
    config     TEXT    NOT NULL,
    created_at TEXT    NOT NULL
);
INSERT INTO check_configs_new (id, hash, config, created_at) SELECT rowid, hash, config, created_at FROM check_configs ORDER BY rowid;
DROP TABLE check_configs;
ALTER TABLE check_configs_new RENAME TO check_configs;

-- One row per record judged under a configuration. Bit i of `ran` and `failed` is check i of the
-- catalogue in Sources/CorpusDB/Model/PackedVerdicts.swift (exact_duplicate, near_duplicate,
-- conflicting_answer, prompt_length, answer_length, prompt_tokens, answer_tokens, char_repetition,
-- ngram_repetition, special_characters, mojibake, filler_opening, boilerplate,
-- answer_echoes_prompt, language_mismatch, pii; append only).
CREATE TABLE verdicts (
    config_id INTEGER NOT NULL REFERENCES check_configs (id),
    record_id INTEGER NOT NULL REFERENCES records (id),
    ran       INTEGER NOT NULL CHECK (ran > 0),            -- the checks that judged the record
    failed    INTEGER NOT NULL CHECK (failed & ~ran = 0),  -- those it failed
    scores    BLOB    NOT NULL,                            -- one little-endian float64 per bit of ran, lowest first; NaN: no score
    details   TEXT,                                        -- the failed checks' reasons, a JSON object by check name; NULL when none failed
    PRIMARY KEY (config_id, record_id)
) WITHOUT ROWID;

-- The rows of `checks` are packed into `verdicts` by Swift code run right after this script
-- (Migrations.packLegacyVerdicts), which then drops `checks`.

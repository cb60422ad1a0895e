-- 0001: sources, records, rejects and the audit log.
-- Shipped migrations are never edited; add a new numbered file instead (docs/STORE.md).

-- One row per ingested file (re-ingesting the same bytes with --force adds a new row).
CREATE TABLE sources (
    id                  INTEGER PRIMARY KEY,
    path                TEXT    NOT NULL,            -- as given on the command line, made absolute
    sha256              TEXT    NOT NULL,            -- hex SHA-256 of the file's bytes
    bytes               INTEGER NOT NULL,
    format              TEXT    NOT NULL CHECK (format IN ('csv', 'json', 'jsonl')),
    encoding            TEXT    NOT NULL,            -- e.g. UTF-8, GB18030, UTF-16LE
    encoding_confidence INTEGER NOT NULL,            -- 0..100
    encoding_method     TEXT    NOT NULL,            -- bom | utf8 | icu | forced
    mapping             TEXT    NOT NULL,            -- JSON: how fields became a conversation
    tags                TEXT    NOT NULL DEFAULT '{}', -- JSON object given to every record
    options             TEXT    NOT NULL DEFAULT '{}', -- JSON: forced format/encoding, --lossy, delimiter
    rows_read           INTEGER NOT NULL DEFAULT 0,
    records_added       INTEGER NOT NULL DEFAULT 0,
    rows_rejected       INTEGER NOT NULL DEFAULT 0,
    imported_at         TEXT    NOT NULL,            -- ISO 8601 UTC
    tool_version        TEXT    NOT NULL
);
CREATE INDEX sources_sha256 ON sources (sha256);

-- One row per input row that became a conversation.
CREATE TABLE records (
    id            INTEGER PRIMARY KEY,
    source_id     INTEGER NOT NULL REFERENCES sources (id),
    row_index     INTEGER NOT NULL,                  -- 0-based row number within the file
    locator       TEXT    NOT NULL,                  -- "row 12", "[41]", "[0][3]", "line 17"
    line          INTEGER NOT NULL,                  -- 1-based physical line where the row starts
    byte_offset   INTEGER NOT NULL,                  -- offset of the row in the original file
    byte_length   INTEGER NOT NULL,                  -- length of the row in the original file
    conversation  TEXT    NOT NULL,                  -- canonical JSON (docs/STORE.md)
    original      TEXT    NOT NULL,                  -- JSON object: the row's fields as read
    tags          TEXT    NOT NULL DEFAULT '{}',     -- JSON object of string values
    content_hash  TEXT    NOT NULL,                  -- hex SHA-256 of `conversation`
    flags         TEXT    NOT NULL DEFAULT '[]',     -- JSON array, e.g. ["lossy_decoding"]
    UNIQUE (source_id, row_index)
);
CREATE INDEX records_content_hash ON records (content_hash);

-- One row per input row that could not become a record, with the reason.
CREATE TABLE rejects (
    id          INTEGER PRIMARY KEY,
    source_id   INTEGER NOT NULL REFERENCES sources (id),
    row_index   INTEGER NOT NULL,
    locator     TEXT    NOT NULL,
    line        INTEGER NOT NULL,
    byte_offset INTEGER NOT NULL,
    byte_length INTEGER NOT NULL,
    reason      TEXT    NOT NULL,                    -- stable code: empty_answer, undecodable_bytes, ...
    detail      TEXT    NOT NULL,                    -- a sentence naming the field, turn or byte
    excerpt     TEXT    NOT NULL,                    -- the first characters of the row
    UNIQUE (source_id, row_index)
);
CREATE INDEX rejects_source ON rejects (source_id, reason);

-- Every command that changes the store.
CREATE TABLE audit_log (
    id           INTEGER PRIMARY KEY,
    at           TEXT    NOT NULL,                   -- ISO 8601 UTC
    command      TEXT    NOT NULL,                   -- e.g. "ingest"
    arguments    TEXT    NOT NULL,                   -- JSON array of the command line
    tool_version TEXT    NOT NULL,
    outcome      TEXT    NOT NULL DEFAULT '{}'       -- JSON: what the command changed
);

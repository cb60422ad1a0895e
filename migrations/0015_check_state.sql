-- 0015: what the last whole-store `corpus check` under a configuration covered, so that the next
-- one after an ingest compares only the new records with what is stored (their facts, signatures,
-- groups and recurring sentences) instead of settling the corpus-wide findings over every record
-- again (docs/QUALITY.md, "Incremental checks"). A check limited by --source or --tag, and
-- `corpus forget --erase`, delete the row: the next check then settles everything again.
CREATE TABLE check_state (
    config_id      INTEGER PRIMARY KEY REFERENCES check_configs (id),
    records        INTEGER NOT NULL,   -- how many records the store held
    last_record_id INTEGER NOT NULL,   -- the largest of their ids (ids only grow)
    covering       INTEGER NOT NULL,   -- the checks every one of them has a verdict from (bits as verdicts.ran)
    facts_key      TEXT    NOT NULL,   -- their check_facts rows
    signature_key  TEXT                -- their minhash_signatures rows; NULL when near duplicates were not looked for
);

-- The recurring sentences' hashes (FNV-1a of the normalized sentence, as a signed 64-bit integer),
-- which the incremental check counts on; NULL in rows stored before (then it settles everything).
ALTER TABLE boilerplate ADD COLUMN sentence_hash INTEGER;

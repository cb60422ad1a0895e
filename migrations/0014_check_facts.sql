-- 0014: what the corpus-wide findings of `corpus check` need of each record besides its MinHash
-- signature (the keys of its normalized conversation and question, its answer's length and
-- sentence hashes), stored so that a later check reads a record judged before instead of
-- decoding and normalizing it again (docs/QUALITY.md, "Incremental checks"). Derived from the
-- text: `corpus forget` deletes a record's rows with its text.

CREATE TABLE check_facts (
    record_id  INTEGER NOT NULL REFERENCES records (id),
    facts_key  TEXT    NOT NULL,   -- CheckConfiguration.factsKey: normalization version, sentence length
    facts      BLOB    NOT NULL,   -- pair key, prompt key (SHA-256), answer length, sentence hashes
    PRIMARY KEY (record_id, facts_key)
) WITHOUT ROWID;

-- 0016: duplicate-group members name their check configuration by its integer id (as `verdicts`
-- does since 0012) instead of its 64-character hash, which every row and every entry of the
-- representative index repeated: at ten million records storing ~8 million members took 800 s,
-- most of it writing those index pages. Rebuilt as SQLite's ALTER TABLE procedure describes.
CREATE TABLE duplicate_groups_new (
    config_id         INTEGER NOT NULL REFERENCES check_configs (id),
    kind              TEXT    NOT NULL CHECK (kind IN ('exact', 'near', 'conflict', 'borderline')),
    record_id         INTEGER NOT NULL REFERENCES records (id),
    representative_id INTEGER NOT NULL REFERENCES records (id),
    similarity        REAL,                          -- near, borderline: estimated Jaccard with the representative
    PRIMARY KEY (config_id, kind, record_id)
) WITHOUT ROWID;
INSERT INTO duplicate_groups_new (config_id, kind, record_id, representative_id, similarity)
    SELECT c.id, g.kind, g.record_id, g.representative_id, g.similarity
    FROM duplicate_groups g JOIN check_configs c ON c.hash = g.config_hash
    ORDER BY c.id, g.kind, g.record_id;
DROP TABLE duplicate_groups;
ALTER TABLE duplicate_groups_new RENAME TO duplicate_groups;
CREATE INDEX duplicate_groups_representative ON duplicate_groups (config_id, kind, representative_id);

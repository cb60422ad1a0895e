-- 0013: a record's original fields stored by reference where they repeat its conversation
-- (docs/STORE.md, "Original fields by reference"). For CSV rows, `original` keeps only the
-- fields not found in a turn, and `original_refs` maps each other field to
-- [turn, UTF-8 start, UTF-8 length] in the conversation's turns. NULL (every row stored before
-- 0013, and JSON input): `original` holds every field. Rows are not rewritten.

ALTER TABLE records ADD COLUMN original_refs TEXT;  -- JSON object: field -> [turn, start, length]

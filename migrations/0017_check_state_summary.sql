-- 0017: the per-check counts of the verdicts under a configuration (checked, failed), kept with its
-- check state so that `corpus check` after a small file adds the new rows' counts instead of
-- summing a million verdict rows again. JSON: {"check name": [checked, failed], ...}. NULL in rows
-- stored before: the counts are then summed from `verdicts`. Every writer of `verdicts` updates
-- or deletes the check state in the same transaction.
ALTER TABLE check_state ADD COLUMN summary TEXT;

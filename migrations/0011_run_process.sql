-- 0011: which process is training a run, so that a run whose process is gone without recording
-- an outcome (killed, crashed, the machine lost power) is not shown as `running` for ever
-- (docs/RELIABILITY.md, "Crash consistency"). Set by `corpus train` when the run starts or
-- resumes; NULL for runs recorded before 0011 and for imported adapters.

ALTER TABLE runs ADD COLUMN pid INTEGER;          -- the training process's id
ALTER TABLE runs ADD COLUMN host TEXT;            -- the machine's host name
ALTER TABLE runs ADD COLUMN process_start TEXT;   -- Linux: "<boot id>/<start time in clock ticks>" of that process (tells it from a later process with the same id)

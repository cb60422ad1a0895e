-- 0006: what `corpus train` records beside the runs and adapters tables of 0003: a summary of
-- each run (figures a user and an auditor look for) and its loss curve.

-- JSON written when the run ends (or is interrupted): steps, tokens, final_loss,
-- final_eval_loss, tokens_per_second, seconds, examples kept, truncated and dropped.
ALTER TABLE runs ADD COLUMN summary TEXT;

-- One row per optimizer step: the training loss of that step's batch, the learning rate used,
-- the assistant tokens it trained on, and, on evaluation steps, the mean loss on the eval split.
CREATE TABLE run_metrics (
    run_id        INTEGER NOT NULL REFERENCES runs (id),
    step          INTEGER NOT NULL CHECK (step >= 1),
    loss          REAL    NOT NULL,
    eval_loss     REAL,
    learning_rate REAL    NOT NULL,
    tokens        INTEGER NOT NULL,
    seconds       REAL    NOT NULL,                 -- since the run started (resumed runs continue)
    PRIMARY KEY (run_id, step)
) WITHOUT ROWID;

-- 0010: what `corpus eval` adds per item for rewards and preference pairs (docs/EVAL.md).
-- NULL where it was not computed: evaluations without --reward, items that are not preference
-- pairs (or pairs left out of the comparison for --max-len), and every row before 0010.

ALTER TABLE eval_items ADD COLUMN reward REAL;          -- Σ weight · score over the --reward functions
ALTER TABLE eval_items ADD COLUMN rewards TEXT;         -- JSON {name: score} per reward function, sorted keys
ALTER TABLE eval_items ADD COLUMN logp_chosen REAL;     -- preference pair: Σ log p of the chosen answer's tokens
ALTER TABLE eval_items ADD COLUMN logp_rejected REAL;   -- and of the rejected answer's

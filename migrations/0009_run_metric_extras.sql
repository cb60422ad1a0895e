-- 0009: the figures a training objective reports besides the loss (DPO's rewards/chosen,
-- rewards/rejected, rewards/accuracies, rewards/margins, logps/…, and their eval/ forms), one
-- JSON object per step with sorted keys; NULL for supervised steps and for runs before 0009.
-- `corpus runs show` prints and draws them; TensorBoard files carry the same scalars.

ALTER TABLE run_metrics ADD COLUMN metrics TEXT;

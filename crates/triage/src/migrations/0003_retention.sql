-- Migration 3: spool retention. Some days after a study's outcome its instance files are
-- removed from the spool and their rows from `instances` (`[storage] retention_days`); the
-- study, its journal, its case and decisions stay.
--
-- `pruning_generation`: while a removal is under way, the last generation whose instances
-- it removes (NULL otherwise), so that one a crash interrupted is finished at the next
-- pass. `pruned_at`: when the study's instances were last removed (UTC Unix ms).
ALTER TABLE studies ADD COLUMN pruning_generation INTEGER;
ALTER TABLE studies ADD COLUMN pruned_at INTEGER;

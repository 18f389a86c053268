-- Migration 1: the study journal and the nurse queue.
--
-- Times are UTC Unix milliseconds (INTEGER): they sort, compare and index as numbers, and
-- the API formats them as RFC 3339. No patient identifier is stored: `patient_key` is a
-- keyed pseudonym (see `spinewatch_triage::patient_key`).

-- A study as the pipeline carries it through the journaled state machine. `generation`
-- counts openings: an instance arriving after completion re-opens the study and the next
-- generation is analysed again; work for an older generation is refused.
CREATE TABLE studies (
    study_instance_uid TEXT PRIMARY KEY NOT NULL,
    patient_key        TEXT NOT NULL,
    state              TEXT NOT NULL CHECK (state IN (
                           'received', 'complete', 'analysing',
                           'excluded', 'not_analysable', 'analysed', 'queued')),
    -- Why the study was excluded or not analysable (a short code from a closed set).
    reason             TEXT,
    generation         INTEGER NOT NULL CHECK (generation >= 1),
    -- First and last instance of the current generation.
    first_instance_at  INTEGER NOT NULL,
    last_instance_at   INTEGER NOT NULL,
    completed_at       INTEGER,
    -- Outcomes recorded (one per generation that reached one).
    analysed_count     INTEGER NOT NULL DEFAULT 0,
    created_at         INTEGER NOT NULL,
    updated_at         INTEGER NOT NULL
) STRICT;

CREATE INDEX studies_by_state ON studies (state, last_instance_at);

-- One row per SOP instance: a second C-STORE of the same SOP Instance UID is a duplicate.
CREATE TABLE instances (
    sop_instance_uid    TEXT PRIMARY KEY NOT NULL,
    study_instance_uid  TEXT NOT NULL REFERENCES studies (study_instance_uid),
    series_instance_uid TEXT NOT NULL,
    sop_class_uid       TEXT NOT NULL,
    transfer_syntax_uid TEXT NOT NULL,
    modality            TEXT,
    -- Where the spool put the file.
    path                TEXT NOT NULL,
    bytes               INTEGER NOT NULL CHECK (bytes >= 0),
    -- The study generation the instance arrived in.
    generation          INTEGER NOT NULL,
    received_at         INTEGER NOT NULL
) STRICT;

CREATE INDEX instances_by_study ON instances (study_instance_uid, series_instance_uid);

-- Every state transition of every study, in order (`id`). Append-only.
CREATE TABLE journal (
    id                 INTEGER PRIMARY KEY AUTOINCREMENT,
    study_instance_uid TEXT NOT NULL REFERENCES studies (study_instance_uid),
    generation         INTEGER NOT NULL,
    -- NULL when the study was first seen.
    from_state         TEXT,
    to_state           TEXT NOT NULL,
    reason             TEXT,
    at                 INTEGER NOT NULL
) STRICT;

CREATE INDEX journal_by_study ON journal (study_instance_uid, id);

CREATE TRIGGER journal_no_update BEFORE UPDATE ON journal
BEGIN
    SELECT RAISE(ABORT, 'the journal is append-only');
END;

CREATE TRIGGER journal_no_delete BEFORE DELETE ON journal
BEGIN
    SELECT RAISE(ABORT, 'the journal is append-only');
END;

-- The nurses' queue: one case per positive study, its findings from the latest generation.
CREATE TABLE cases (
    study_instance_uid TEXT PRIMARY KEY NOT NULL
                           REFERENCES studies (study_instance_uid),
    patient_key        TEXT NOT NULL,
    status             TEXT NOT NULL CHECK (status IN (
                           'open', 'confirmed', 'dismissed', 'referred')),
    -- Largest vertebra fracture probability.
    probability        REAL NOT NULL,
    -- Largest Genant grade of the flagged vertebrae (the worklist's first sort key).
    max_grade          INTEGER NOT NULL CHECK (max_grade BETWEEN 0 AND 3),
    -- `CaseFindings` as JSON: every vertebra, key-image references.
    findings_json      TEXT NOT NULL,
    model_version      TEXT NOT NULL,
    execution_provider TEXT NOT NULL,
    -- DICOM Study Date as YYYY-MM-DD, when the study carries one.
    study_date         TEXT,
    -- The study generation the findings come from.
    generation         INTEGER NOT NULL,
    created_at         INTEGER NOT NULL,
    updated_at         INTEGER NOT NULL
) STRICT;

CREATE INDEX cases_worklist
    ON cases (status, max_grade DESC, probability DESC, created_at DESC);

-- Every decision on a case, with who, when and the status before and after. Append-only.
-- `user` is the signed-in name; a later migration adds the users table (name, role) it
-- will refer to. Re-analysis is recorded here too, as action 'reanalysed' by 'system'.
CREATE TABLE decisions (
    id                 INTEGER PRIMARY KEY AUTOINCREMENT,
    study_instance_uid TEXT NOT NULL REFERENCES cases (study_instance_uid),
    user               TEXT NOT NULL,
    action             TEXT NOT NULL CHECK (action IN (
                           'confirm', 'dismiss', 'refer', 'reanalysed')),
    -- Confirmed grade and level (confirm only).
    grade              INTEGER CHECK (grade BETWEEN 0 AND 3),
    level              TEXT,
    note               TEXT,
    previous_status    TEXT NOT NULL,
    new_status         TEXT NOT NULL,
    at                 INTEGER NOT NULL
) STRICT;

CREATE INDEX decisions_by_case ON decisions (study_instance_uid, id);

CREATE TRIGGER decisions_no_update BEFORE UPDATE ON decisions
BEGIN
    SELECT RAISE(ABORT, 'decisions are append-only');
END;

CREATE TRIGGER decisions_no_delete BEFORE DELETE ON decisions
BEGIN
    SELECT RAISE(ABORT, 'decisions are append-only');
END;

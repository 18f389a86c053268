-- Migration 2: the nurse web UI (issue 6): users, sessions, API tokens, case numbers and
-- the FLS dispositions.
--
-- `cases` and `decisions` are rebuilt (SQLite cannot alter a CHECK); their rows are kept,
-- with the same ids, and their append-only triggers are made again. The store runs every
-- migration with foreign keys off and checks them (`PRAGMA foreign_key_check`) before it
-- commits, as https://www.sqlite.org/lang_altertable.html#otheralter describes.

-- The people who sign in. `name` is unique whatever its case; `system` is reserved for the
-- store's own decisions. `password_hash` is an argon2id PHC string; nothing else of the
-- password is stored. A disabled user keeps their decisions but cannot sign in, and their
-- sessions and tokens stop working.
CREATE TABLE users (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    name          TEXT NOT NULL UNIQUE COLLATE NOCASE
                      CHECK (length(name) BETWEEN 1 AND 64 AND lower(name) <> 'system'),
    role          TEXT NOT NULL CHECK (role IN ('nurse', 'admin')),
    password_hash TEXT NOT NULL,
    created_at    INTEGER NOT NULL,
    disabled_at   INTEGER
) STRICT;

-- Signed-in browsers. The cookie holds a 256-bit random token; only its SHA-256 (hex) is
-- stored, so a copy of the database signs nobody in. `csrf_token` is the session's
-- anti-forgery token, put in every form. A session ends at `expires_at` (absolute) or
-- `idle_timeout_ms` after `last_seen_at`, whichever comes first.
CREATE TABLE sessions (
    token_hash      TEXT PRIMARY KEY NOT NULL,
    user_id         INTEGER NOT NULL REFERENCES users (id),
    csrf_token      TEXT NOT NULL,
    created_at      INTEGER NOT NULL,
    last_seen_at    INTEGER NOT NULL,
    expires_at      INTEGER NOT NULL,
    idle_timeout_ms INTEGER NOT NULL CHECK (idle_timeout_ms > 0)
) STRICT;

CREATE INDEX sessions_by_user ON sessions (user_id);

-- Bearer tokens of scripts and FLS systems (`spinewatch token create`): 256-bit random,
-- shown once, stored as SHA-256 (hex). Revoked tokens stay listed.
CREATE TABLE api_tokens (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    token_hash   TEXT NOT NULL UNIQUE,
    user_id      INTEGER NOT NULL REFERENCES users (id),
    label        TEXT,
    created_at   INTEGER NOT NULL,
    revoked_at   INTEGER,
    last_used_at INTEGER
) STRICT;

-- The queue again, with:
-- - `case_number`: the stable number of the case page (`/cases/{n}`), assigned at insert
--   (1, 2, ...), never a Study UID or a patient identifier;
-- - status `closed` with a `disposition` (why an FLS nurse does not take the case forward);
-- - the confirmed grade and level (a nurse's confirm), for the case page and the register;
-- - `scanner` (manufacturer and model, else station name), the worklist's filter.
CREATE TABLE cases_v2 (
    study_instance_uid TEXT PRIMARY KEY NOT NULL
                           REFERENCES studies (study_instance_uid),
    case_number        INTEGER NOT NULL UNIQUE CHECK (case_number >= 1),
    patient_key        TEXT NOT NULL,
    status             TEXT NOT NULL CHECK (status IN (
                           'open', 'confirmed', 'dismissed', 'referred', 'closed')),
    disposition        TEXT CHECK (disposition IN (
                           'already_known', 'cancer_pathway', 'not_appropriate')),
    confirmed_grade    INTEGER CHECK (confirmed_grade BETWEEN 1 AND 3),
    confirmed_level    TEXT,
    probability        REAL NOT NULL,
    max_grade          INTEGER NOT NULL CHECK (max_grade BETWEEN 0 AND 3),
    findings_json      TEXT NOT NULL,
    model_version      TEXT NOT NULL,
    execution_provider TEXT NOT NULL,
    study_date         TEXT,
    scanner            TEXT,
    generation         INTEGER NOT NULL,
    created_at         INTEGER NOT NULL,
    updated_at         INTEGER NOT NULL,
    CHECK ((status = 'closed') = (disposition IS NOT NULL)),
    CHECK ((status = 'confirmed') = (confirmed_grade IS NOT NULL AND confirmed_level IS NOT NULL))
) STRICT;

-- Existing cases are numbered in the order they were queued. A confirmed case takes the
-- grade and level of its latest confirm.
INSERT INTO cases_v2 (study_instance_uid, case_number, patient_key, status, disposition,
    confirmed_grade, confirmed_level, probability, max_grade, findings_json, model_version,
    execution_provider, study_date, scanner, generation, created_at, updated_at)
SELECT c.study_instance_uid,
       row_number() OVER (ORDER BY c.created_at, c.study_instance_uid),
       c.patient_key, c.status, NULL,
       CASE WHEN c.status = 'confirmed' THEN (
           SELECT d.grade FROM decisions d
           WHERE d.study_instance_uid = c.study_instance_uid AND d.action = 'confirm'
           ORDER BY d.id DESC LIMIT 1) END,
       CASE WHEN c.status = 'confirmed' THEN (
           SELECT d.level FROM decisions d
           WHERE d.study_instance_uid = c.study_instance_uid AND d.action = 'confirm'
           ORDER BY d.id DESC LIMIT 1) END,
       c.probability, c.max_grade, c.findings_json, c.model_version, c.execution_provider,
       c.study_date,
       coalesce(
           nullif(trim(
               coalesce(trim(json_extract(c.findings_json, '$.study.manufacturer')), '')
               || ' ' ||
               coalesce(trim(json_extract(c.findings_json, '$.study.scanner_model')), '')), ''),
           json_extract(c.findings_json, '$.study.station_name')),
       c.generation, c.created_at, c.updated_at
FROM cases c;

-- Decisions again, with the dispositions as actions and the case's state before and after
-- in full: status, disposition, confirmed grade and level.
CREATE TABLE decisions_v2 (
    id                   INTEGER PRIMARY KEY AUTOINCREMENT,
    study_instance_uid   TEXT NOT NULL REFERENCES cases (study_instance_uid),
    user                 TEXT NOT NULL,
    action               TEXT NOT NULL CHECK (action IN (
                             'confirm', 'dismiss', 'refer', 'already_known',
                             'cancer_pathway', 'not_appropriate', 'reanalysed')),
    -- After: confirmed grade and level (confirm), disposition (closing actions).
    grade                INTEGER CHECK (grade BETWEEN 0 AND 3),
    level                TEXT,
    disposition          TEXT,
    note                 TEXT,
    previous_status      TEXT NOT NULL,
    new_status           TEXT NOT NULL,
    -- Before: the case's disposition and confirmed grade and level.
    previous_disposition TEXT,
    previous_grade       INTEGER CHECK (previous_grade BETWEEN 0 AND 3),
    previous_level       TEXT,
    at                   INTEGER NOT NULL
) STRICT;

INSERT INTO decisions_v2 (id, study_instance_uid, user, action, grade, level, disposition,
    note, previous_status, new_status, previous_disposition, previous_grade, previous_level,
    at)
SELECT d.id, d.study_instance_uid, d.user, d.action, d.grade, d.level, NULL, d.note,
       d.previous_status, d.new_status, NULL,
       CASE WHEN d.previous_status = 'confirmed' THEN (
           SELECT p.grade FROM decisions p
           WHERE p.study_instance_uid = d.study_instance_uid AND p.id < d.id
             AND p.action = 'confirm' ORDER BY p.id DESC LIMIT 1) END,
       CASE WHEN d.previous_status = 'confirmed' THEN (
           SELECT p.level FROM decisions p
           WHERE p.study_instance_uid = d.study_instance_uid AND p.id < d.id
             AND p.action = 'confirm' ORDER BY p.id DESC LIMIT 1) END,
       d.at
FROM decisions d;

DROP TRIGGER decisions_no_update;
DROP TRIGGER decisions_no_delete;
DROP TABLE decisions;
DROP TABLE cases;
ALTER TABLE cases_v2 RENAME TO cases;
ALTER TABLE decisions_v2 RENAME TO decisions;

CREATE INDEX cases_worklist
    ON cases (status, max_grade DESC, probability DESC, created_at DESC);
CREATE INDEX cases_by_patient ON cases (patient_key);

CREATE INDEX decisions_by_case ON decisions (study_instance_uid, id);

CREATE TRIGGER decisions_no_update BEFORE UPDATE ON decisions
BEGIN
    SELECT RAISE(ABORT, 'decisions are append-only');
END;

CREATE TRIGGER decisions_no_delete BEFORE DELETE ON decisions
BEGIN
    SELECT RAISE(ABORT, 'decisions are append-only');
END;

-- The standard metric catalogue. Rows here are written only by the catalogue sync at start-up;
-- everything agencies report points at them, so a catalogue change that would orphan data fails.

CREATE TYPE system AS ENUM (
    'LAW_ENFORCEMENT', 'PROSECUTION', 'DEFENSE', 'COURTS_AND_PRETRIAL', 'JAILS', 'PRISONS',
    'SUPERVISION', 'PAROLE', 'PROBATION', 'PRETRIAL_SUPERVISION', 'OTHER_SUPERVISION',
    'SUPERAGENCY'
);
CREATE TYPE metric_category AS ENUM (
    'CAPACITY_AND_COSTS', 'OPERATIONS_AND_DYNAMICS', 'POPULATIONS', 'PUBLIC_SAFETY', 'FAIRNESS'
);
CREATE TYPE measurement_type AS ENUM ('INSTANT', 'DELTA', 'AVERAGE', 'PERSON_BASED_DELTA');
CREATE TYPE report_frequency AS ENUM ('MONTHLY', 'ANNUAL');

CREATE TABLE metric_definitions (
    key               TEXT PRIMARY KEY CHECK (key ~ '^[A-Z][A-Z0-9_]*$'),
    system            system NOT NULL,
    metric_type       TEXT NOT NULL CHECK (metric_type ~ '^[A-Z][A-Z0-9_]*$'),
    -- A per-subsystem copy (PAROLE_POPULATION) points at the SUPERVISION metric it copies.
    parent_key        TEXT REFERENCES metric_definitions (key),
    display_name      TEXT NOT NULL CHECK (btrim(display_name) <> ''),
    description       TEXT NOT NULL,
    category          metric_category NOT NULL,
    measurement_type  measurement_type NOT NULL,
    default_frequency report_frequency NOT NULL,
    unit              TEXT NOT NULL,
    position          INTEGER NOT NULL,
    CONSTRAINT metric_definitions_key_is_system_and_type CHECK (key = system::text || '_' || metric_type),
    CONSTRAINT metric_definitions_system_metric_type_key UNIQUE (system, metric_type)
);

CREATE TABLE metric_breakdowns (
    metric_key   TEXT NOT NULL REFERENCES metric_definitions (key) ON DELETE CASCADE,
    dimension_id TEXT NOT NULL CHECK (dimension_id ~ '^[a-z0-9_/]+$'),
    display_name TEXT NOT NULL,
    is_required  BOOLEAN NOT NULL,
    position     INTEGER NOT NULL,
    PRIMARY KEY (metric_key, dimension_id)
);

CREATE TABLE breakdown_members (
    metric_key   TEXT NOT NULL,
    dimension_id TEXT NOT NULL,
    member       TEXT NOT NULL CHECK (member ~ '^[A-Z0-9_]+$'),
    label        TEXT NOT NULL,
    position     INTEGER NOT NULL,
    PRIMARY KEY (metric_key, dimension_id, member),
    FOREIGN KEY (metric_key, dimension_id)
        REFERENCES metric_breakdowns (metric_key, dimension_id) ON DELETE CASCADE
);

-- The "includes / excludes" checklist: what an agency counts in a metric.
CREATE TABLE includes_excludes_items (
    metric_key       TEXT NOT NULL REFERENCES metric_definitions (key) ON DELETE CASCADE,
    item_key         TEXT NOT NULL CHECK (item_key ~ '^[A-Z0-9_]+$'),
    group_index      INTEGER NOT NULL CHECK (group_index >= 0),
    is_multiselect   BOOLEAN NOT NULL,
    label            TEXT NOT NULL,
    default_included BOOLEAN NOT NULL,
    position         INTEGER NOT NULL,
    PRIMARY KEY (metric_key, item_key)
);

-- Which catalogue file the tables hold, so that an unchanged catalogue is not re-synced.
CREATE TABLE catalogue_state (
    singleton    BOOLEAN PRIMARY KEY DEFAULT TRUE CHECK (singleton),
    content_hash TEXT NOT NULL,
    synced_at    TIMESTAMPTZ NOT NULL DEFAULT now()
);

// @generated automatically by Diesel CLI.

pub mod sql_types {
    #[derive(diesel::query_builder::QueryId, diesel::sql_types::SqlType)]
    #[diesel(postgres_type(name = "agency_role"))]
    pub struct AgencyRole;

    #[derive(diesel::query_builder::QueryId, diesel::sql_types::SqlType)]
    #[diesel(postgres_type(name = "agency_setting_kind"))]
    pub struct AgencySettingKind;

    #[derive(diesel::query_builder::QueryId, diesel::sql_types::SqlType)]
    #[diesel(postgres_type(name = "invitation_status"))]
    pub struct InvitationStatus;

    #[derive(diesel::query_builder::QueryId, diesel::sql_types::SqlType)]
    #[diesel(postgres_type(name = "job_state"))]
    pub struct JobState;

    #[derive(diesel::query_builder::QueryId, diesel::sql_types::SqlType)]
    #[diesel(postgres_type(name = "jurisdiction_kind"))]
    pub struct JurisdictionKind;

    #[derive(diesel::query_builder::QueryId, diesel::sql_types::SqlType)]
    #[diesel(postgres_type(name = "measurement_type"))]
    pub struct MeasurementType;

    #[derive(diesel::query_builder::QueryId, diesel::sql_types::SqlType)]
    #[diesel(postgres_type(name = "message_severity"))]
    pub struct MessageSeverity;

    #[derive(diesel::query_builder::QueryId, diesel::sql_types::SqlType)]
    #[diesel(postgres_type(name = "metric_category"))]
    pub struct MetricCategory;

    #[derive(diesel::query_builder::QueryId, diesel::sql_types::SqlType)]
    #[diesel(postgres_type(name = "report_change_kind"))]
    pub struct ReportChangeKind;

    #[derive(diesel::query_builder::QueryId, diesel::sql_types::SqlType)]
    #[diesel(postgres_type(name = "report_frequency"))]
    pub struct ReportFrequency;

    #[derive(diesel::query_builder::QueryId, diesel::sql_types::SqlType)]
    #[diesel(postgres_type(name = "report_status"))]
    pub struct ReportStatus;

    #[derive(diesel::query_builder::QueryId, diesel::sql_types::SqlType)]
    #[diesel(postgres_type(name = "spreadsheet_status"))]
    pub struct SpreadsheetStatus;

    #[derive(diesel::query_builder::QueryId, diesel::sql_types::SqlType)]
    #[diesel(postgres_type(name = "system"))]
    pub struct System;

    #[derive(diesel::query_builder::QueryId, diesel::sql_types::SqlType)]
    #[diesel(postgres_type(name = "value_outcome"))]
    pub struct ValueOutcome;

    #[derive(diesel::query_builder::QueryId, diesel::sql_types::SqlType)]
    #[diesel(postgres_type(name = "value_source"))]
    pub struct ValueSource;
}

diesel::table! {
    use diesel::sql_types::*;
    use super::sql_types::System;

    agencies (id) {
        id -> Int4,
        name -> Text,
        state_code -> Text,
        county_code -> Nullable<Text>,
        systems -> Array<Nullable<System>>,
        is_superagency -> Bool,
        super_agency_id -> Nullable<Int4>,
        is_dashboard_enabled -> Bool,
        created_at -> Timestamptz,
    }
}

diesel::table! {
    use diesel::sql_types::*;
    use super::sql_types::JurisdictionKind;

    agency_jurisdictions (agency_id, geoid) {
        agency_id -> Int4,
        geoid -> Text,
        kind -> JurisdictionKind,
    }
}

diesel::table! {
    use diesel::sql_types::*;
    use super::sql_types::AgencySettingKind;

    agency_settings (agency_id, kind) {
        agency_id -> Int4,
        kind -> AgencySettingKind,
        value -> Text,
        updated_at -> Timestamptz,
    }
}

diesel::table! {
    breakdown_members (metric_key, dimension_id, member) {
        metric_key -> Text,
        dimension_id -> Text,
        member -> Text,
        label -> Text,
        position -> Int4,
    }
}

diesel::table! {
    catalogue_state (singleton) {
        singleton -> Bool,
        content_hash -> Text,
        synced_at -> Timestamptz,
    }
}

diesel::table! {
    use diesel::sql_types::*;
    use super::sql_types::ValueSource;

    datapoint_changes (id) {
        id -> Int8,
        datapoint_id -> Int8,
        changed_by -> Nullable<Int4>,
        changed_at -> Timestamptz,
        old_value -> Nullable<Float8>,
        new_value -> Nullable<Float8>,
        source -> ValueSource,
        report_version -> Nullable<Int4>,
    }
}

diesel::table! {
    use diesel::sql_types::*;
    use super::sql_types::ValueSource;

    datapoints (id) {
        id -> Int8,
        report_id -> Int4,
        metric_key -> Text,
        dimension_id -> Nullable<Text>,
        member -> Nullable<Text>,
        sub_category -> Nullable<Text>,
        value -> Nullable<Float8>,
        source -> ValueSource,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
        updated_by -> Nullable<Int4>,
    }
}

diesel::table! {
    includes_excludes_items (metric_key, item_key) {
        metric_key -> Text,
        item_key -> Text,
        group_index -> Int4,
        is_multiselect -> Bool,
        label -> Text,
        default_included -> Bool,
        position -> Int4,
    }
}

diesel::table! {
    use diesel::sql_types::*;
    use super::sql_types::AgencyRole;

    membership_changes (id) {
        id -> Int8,
        user_id -> Int4,
        agency_id -> Int4,
        old_role -> Nullable<AgencyRole>,
        new_role -> Nullable<AgencyRole>,
        changed_by -> Nullable<Int4>,
        changed_at -> Timestamptz,
    }
}

diesel::table! {
    use diesel::sql_types::*;
    use super::sql_types::AgencyRole;
    use super::sql_types::InvitationStatus;

    memberships (user_id, agency_id) {
        user_id -> Int4,
        agency_id -> Int4,
        role -> AgencyRole,
        invitation_status -> InvitationStatus,
        last_visit_at -> Nullable<Timestamptz>,
        is_subscribed_to_emails -> Bool,
        created_at -> Timestamptz,
        invitation_code_hash -> Nullable<Text>,
        invited_by -> Nullable<Int4>,
    }
}

diesel::table! {
    metric_breakdowns (metric_key, dimension_id) {
        metric_key -> Text,
        dimension_id -> Text,
        display_name -> Text,
        is_required -> Bool,
        position -> Int4,
    }
}

diesel::table! {
    use diesel::sql_types::*;
    use super::sql_types::System;
    use super::sql_types::MetricCategory;
    use super::sql_types::MeasurementType;
    use super::sql_types::ReportFrequency;

    metric_definitions (key) {
        key -> Text,
        system -> System,
        metric_type -> Text,
        parent_key -> Nullable<Text>,
        display_name -> Text,
        description -> Text,
        category -> MetricCategory,
        measurement_type -> MeasurementType,
        default_frequency -> ReportFrequency,
        unit -> Text,
        position -> Int4,
    }
}

diesel::table! {
    metric_setting_answers (agency_id, metric_key, item_key) {
        agency_id -> Int4,
        metric_key -> Text,
        item_key -> Text,
        is_included -> Bool,
    }
}

diesel::table! {
    metric_setting_changes (id) {
        id -> Int8,
        agency_id -> Int4,
        metric_key -> Text,
        changed_by -> Nullable<Int4>,
        changed_at -> Timestamptz,
        changes -> Jsonb,
    }
}

diesel::table! {
    metric_setting_members (agency_id, metric_key, dimension_id, member) {
        agency_id -> Int4,
        metric_key -> Text,
        dimension_id -> Text,
        member -> Text,
        is_enabled -> Nullable<Bool>,
        description -> Nullable<Text>,
    }
}

diesel::table! {
    use diesel::sql_types::*;
    use super::sql_types::ReportFrequency;

    metric_settings (agency_id, metric_key) {
        agency_id -> Int4,
        metric_key -> Text,
        is_enabled -> Nullable<Bool>,
        frequency -> Nullable<ReportFrequency>,
        starting_month -> Nullable<Int2>,
        is_disaggregated_by_subsystem -> Nullable<Bool>,
        definition_note -> Nullable<Text>,
        updated_at -> Timestamptz,
    }
}

diesel::table! {
    report_contexts (report_id, metric_key) {
        report_id -> Int4,
        metric_key -> Text,
        value -> Text,
        updated_at -> Timestamptz,
        updated_by -> Nullable<Int4>,
    }
}

diesel::table! {
    report_editors (report_id, user_id) {
        report_id -> Int4,
        user_id -> Int4,
        last_edited_at -> Timestamptz,
    }
}

diesel::table! {
    use diesel::sql_types::*;
    use super::sql_types::ReportStatus;

    report_status_changes (id) {
        id -> Int8,
        report_id -> Int4,
        old_status -> ReportStatus,
        new_status -> ReportStatus,
        changed_by -> Nullable<Int4>,
        changed_at -> Timestamptz,
    }
}

diesel::table! {
    use diesel::sql_types::*;
    use super::sql_types::ReportFrequency;
    use super::sql_types::ReportStatus;

    reports (id) {
        id -> Int4,
        agency_id -> Int4,
        frequency -> ReportFrequency,
        date_range_start -> Date,
        date_range_end -> Date,
        status -> ReportStatus,
        version -> Int4,
        created_at -> Timestamptz,
        last_modified_at -> Timestamptz,
        published_at -> Nullable<Timestamptz>,
    }
}

diesel::table! {
    revoked_tokens (revocation_id) {
        revocation_id -> Text,
        user_id -> Nullable<Int4>,
        revoked_at -> Timestamptz,
    }
}

diesel::table! {
    sessions (id) {
        id -> Int8,
        user_id -> Int4,
        refresh_token_hash -> Text,
        created_at -> Timestamptz,
        renewed_at -> Timestamptz,
        expires_at -> Timestamptz,
        revoked_at -> Nullable<Timestamptz>,
    }
}

diesel::table! {
    spent_refresh_tokens (refresh_token_hash) {
        refresh_token_hash -> Text,
        session_id -> Int8,
        spent_at -> Timestamptz,
    }
}

diesel::table! {
    use diesel::sql_types::*;
    use super::sql_types::MessageSeverity;

    spreadsheet_messages (id) {
        id -> Int8,
        spreadsheet_id -> Int4,
        severity -> MessageSeverity,
        sheet -> Nullable<Text>,
        row_number -> Nullable<Int4>,
        metric_key -> Nullable<Text>,
        message -> Text,
        title -> Text,
        value -> Nullable<Text>,
        options -> Array<Text>,
    }
}

diesel::table! {
    spreadsheet_file_parts (spreadsheet_id, part) {
        spreadsheet_id -> Int4,
        part -> Int4,
        bytes -> Bytea,
    }
}

diesel::table! {
    use diesel::sql_types::*;
    use super::sql_types::ReportChangeKind;

    spreadsheet_report_changes (spreadsheet_id, report_id) {
        spreadsheet_id -> Int4,
        report_id -> Int4,
        change -> ReportChangeKind,
        report_version -> Nullable<Int4>,
    }
}

diesel::table! {
    use diesel::sql_types::*;
    use super::sql_types::System;
    use super::sql_types::SpreadsheetStatus;
    use super::sql_types::ValueSource;

    // Also: file_sha256, rows_accepted and the reading position (read_sheet, read_row,
    // read_done), used through SQL of `ingest` only.
    spreadsheets (id) {
        id -> Int4,
        agency_id -> Int4,
        system -> System,
        file_name -> Text,
        uploaded_by -> Nullable<Int4>,
        uploaded_at -> Timestamptz,
        status -> SpreadsheetStatus,
        ingested_at -> Nullable<Timestamptz>,
        new_datapoint_count -> Int4,
        dry_run -> Bool,
        source -> ValueSource,
        file_size -> Int8,
        rows_read -> Int8,
        rows_saved -> Int8,
        cancel_requested_at -> Nullable<Timestamptz>,
        finished_at -> Nullable<Timestamptz>,
    }
}

diesel::table! {
    use diesel::sql_types::*;
    use super::sql_types::JobState;

    jobs (id) {
        id -> Int8,
        kind -> Text,
        payload -> Jsonb,
        state -> JobState,
        attempts -> Int4,
        max_attempts -> Int4,
        run_after -> Timestamptz,
        lease_until -> Nullable<Timestamptz>,
        worker -> Nullable<Text>,
        last_error -> Nullable<Text>,
        created_at -> Timestamptz,
        started_at -> Nullable<Timestamptz>,
        finished_at -> Nullable<Timestamptz>,
    }
}

diesel::table! {
    users (id) {
        id -> Int4,
        name -> Text,
        email -> Text,
        password_hash -> Nullable<Text>,
        is_platform_admin -> Bool,
        created_at -> Timestamptz,
    }
}

diesel::joinable!(agency_jurisdictions -> agencies (agency_id));
diesel::joinable!(agency_settings -> agencies (agency_id));
diesel::joinable!(datapoint_changes -> datapoints (datapoint_id));
diesel::joinable!(datapoint_changes -> users (changed_by));
diesel::joinable!(datapoints -> metric_definitions (metric_key));
diesel::joinable!(datapoints -> reports (report_id));
diesel::joinable!(datapoints -> users (updated_by));
diesel::joinable!(includes_excludes_items -> metric_definitions (metric_key));
diesel::joinable!(membership_changes -> agencies (agency_id));
diesel::joinable!(memberships -> agencies (agency_id));
diesel::joinable!(metric_breakdowns -> metric_definitions (metric_key));
diesel::joinable!(metric_setting_answers -> agencies (agency_id));
diesel::joinable!(metric_setting_changes -> agencies (agency_id));
diesel::joinable!(metric_setting_changes -> metric_definitions (metric_key));
diesel::joinable!(metric_setting_changes -> users (changed_by));
diesel::joinable!(metric_setting_members -> agencies (agency_id));
diesel::joinable!(metric_settings -> agencies (agency_id));
diesel::joinable!(metric_settings -> metric_definitions (metric_key));
diesel::joinable!(report_contexts -> metric_definitions (metric_key));
diesel::joinable!(report_contexts -> reports (report_id));
diesel::joinable!(report_contexts -> users (updated_by));
diesel::joinable!(report_editors -> reports (report_id));
diesel::joinable!(report_editors -> users (user_id));
diesel::joinable!(report_status_changes -> reports (report_id));
diesel::joinable!(report_status_changes -> users (changed_by));
diesel::joinable!(reports -> agencies (agency_id));
diesel::joinable!(revoked_tokens -> users (user_id));
diesel::joinable!(sessions -> users (user_id));
diesel::joinable!(spent_refresh_tokens -> sessions (session_id));
diesel::joinable!(spreadsheet_messages -> metric_definitions (metric_key));
diesel::joinable!(spreadsheet_messages -> spreadsheets (spreadsheet_id));
diesel::joinable!(spreadsheet_report_changes -> reports (report_id));
diesel::joinable!(spreadsheet_report_changes -> spreadsheets (spreadsheet_id));
diesel::joinable!(spreadsheet_file_parts -> spreadsheets (spreadsheet_id));
diesel::joinable!(spreadsheets -> agencies (agency_id));
diesel::joinable!(spreadsheets -> users (uploaded_by));

diesel::allow_tables_to_appear_in_same_query!(
    agencies,
    jobs,
    agency_jurisdictions,
    agency_settings,
    breakdown_members,
    catalogue_state,
    datapoint_changes,
    datapoints,
    includes_excludes_items,
    membership_changes,
    memberships,
    metric_breakdowns,
    metric_definitions,
    metric_setting_answers,
    metric_setting_changes,
    metric_setting_members,
    metric_settings,
    report_contexts,
    report_editors,
    report_status_changes,
    reports,
    revoked_tokens,
    sessions,
    spent_refresh_tokens,
    spreadsheet_file_parts,
    spreadsheet_messages,
    spreadsheet_report_changes,
    spreadsheets,
    users,
);

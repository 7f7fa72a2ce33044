DROP TABLE metric_setting_changes;
DROP TABLE metric_setting_answers;
DROP TABLE metric_setting_members;
DROP TABLE metric_settings;

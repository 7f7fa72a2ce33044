//! The private cluster used when no DATABASE_URL is set.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use justice_counts::db::cluster::{BinarySearch, Cluster, ClusterOptions, PgBinaries};

fn binaries() -> PgBinaries {
    PgBinaries::locate(&BinarySearch::system(None)).unwrap()
}

fn start(root: &Path) -> anyhow::Result<(Cluster, bool)> {
    Cluster::start(
        binaries(),
        &ClusterOptions {
            root: root.to_owned(),
            durable: false,
            ..ClusterOptions::default()
        },
    )
}

async fn execute(cluster: &Cluster, sql: &str) {
    let mut conn = AsyncPgConnection::establish(&cluster.url("postgres"))
        .await
        .unwrap();
    diesel::sql_query(sql).execute(&mut conn).await.unwrap();
}

#[derive(diesel::QueryableByName)]
struct Name {
    #[diesel(sql_type = diesel::sql_types::Text)]
    name: String,
}

async fn names(cluster: &Cluster) -> Vec<String> {
    let mut conn = AsyncPgConnection::establish(&cluster.url("postgres"))
        .await
        .unwrap();
    diesel::sql_query("SELECT name FROM kept ORDER BY name")
        .load::<Name>(&mut conn)
        .await
        .unwrap()
        .into_iter()
        .map(|row| row.name)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_private_cluster_keeps_its_data_across_restarts_and_crashes() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().to_owned();

    let (mut cluster, created) = start(&root).unwrap();
    assert!(created);
    execute(&cluster, "CREATE TABLE kept (name TEXT)").await;
    execute(&cluster, "INSERT INTO kept VALUES ('before restart')").await;
    cluster.stop().unwrap();
    assert!(
        !root.join("data/postmaster.pid").exists(),
        "a clean stop removes the pid file"
    );
    drop(cluster);

    let (cluster, created) = start(&root).unwrap();
    assert!(!created);
    assert_eq!(names(&cluster).await, ["before restart"]);
    execute(&cluster, "INSERT INTO kept VALUES ('before crash')").await;
    // Simulate a crash: the server vanishes and leaves its pid file behind, naming a process
    // that no longer exists.
    let pid_file = fs::read_to_string(root.join("data/postmaster.pid")).unwrap();
    execute(&cluster, "CHECKPOINT").await;
    let mut cluster = cluster;
    cluster.stop().unwrap();
    let dead = std::process::Command::new("true").spawn().unwrap();
    let dead_pid = dead.id();
    let _ = dead.wait_with_output();
    let stale = pid_file.replacen(pid_file.lines().next().unwrap(), &dead_pid.to_string(), 1);
    fs::write(root.join("data/postmaster.pid"), stale).unwrap();
    drop(cluster);

    let (cluster, _) = start(&root).unwrap();
    assert_eq!(names(&cluster).await, ["before crash", "before restart"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_directory_serves_one_server_process_at_a_time() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().to_owned();
    let (_cluster, _) = start(&root).unwrap();
    let error = start(&root).unwrap_err().to_string();
    assert!(error.contains("another server process"), "{error}");
}

fn fake_install(root: &Path, version: &str) -> PathBuf {
    let bin = root.join(version).join("bin");
    fs::create_dir_all(&bin).unwrap();
    for program in ["initdb", "pg_ctl", "postgres"] {
        let path = bin.join(program);
        fs::write(
            &path,
            format!("#!/bin/sh\necho 'postgres (PostgreSQL) {version}.1'\n"),
        )
        .unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).unwrap();
    }
    bin
}

#[test]
fn the_newest_installed_version_is_preferred() {
    let root = tempfile::tempdir().unwrap();
    fake_install(root.path(), "15");
    let newest = fake_install(root.path(), "17");
    fake_install(root.path(), "9.6");
    let search = BinarySearch {
        versioned_roots: vec![root.path().to_owned()],
        ..BinarySearch::default()
    };
    let found = PgBinaries::locate(&search).unwrap();
    assert_eq!(found.dir(), newest);
    assert_eq!(found.major_version(), 17);
}

#[test]
fn a_version_without_nulls_not_distinct_is_refused() {
    let root = tempfile::tempdir().unwrap();
    fake_install(root.path(), "14");
    let search = BinarySearch {
        versioned_roots: vec![root.path().to_owned()],
        ..BinarySearch::default()
    };
    let error = PgBinaries::locate(&search).unwrap_err().to_string();
    assert!(error.contains("too old"), "{error}");
}

#[test]
fn binaries_on_the_path_come_first() {
    let root = tempfile::tempdir().unwrap();
    let on_path = fake_install(root.path(), "16");
    let versioned = tempfile::tempdir().unwrap();
    fake_install(versioned.path(), "17");
    let search = BinarySearch {
        path: vec![PathBuf::from("/nonexistent"), on_path.clone()],
        versioned_roots: vec![versioned.path().to_owned()],
        ..BinarySearch::default()
    };
    assert_eq!(PgBinaries::locate(&search).unwrap().dir(), on_path);
}

/// A data directory the `postgres` user cannot reach (a checkout under `/root`, when the
/// server runs as root) gets its cluster in a place of its own that the user can reach,
/// the same place every time; as a normal user, the data directory itself.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_data_directory_the_cluster_cannot_reach_gets_a_place_it_can() {
    let dir = tempfile::tempdir().unwrap();
    let private = dir.path().join("home");
    fs::create_dir(&private).unwrap();
    fs::set_permissions(&private, fs::Permissions::from_mode(0o700)).unwrap();
    let root = private.join("checkout/.data/postgres");
    let base = dir.path().join("var-lib");
    let placed = Cluster::placed_in(&root, &base).unwrap();
    if !nix::unistd::Uid::effective().is_root() {
        assert_eq!(placed, root);
        return;
    }
    assert!(placed.starts_with(&base), "{}", placed.display());
    assert_eq!(Cluster::placed_in(&root, &base).unwrap(), placed, "stable");
    let (cluster, created) = start(&placed).unwrap();
    assert!(created);
    execute(&cluster, "CREATE TABLE kept (name TEXT)").await;
    // A reachable data directory is used as it is.
    let open = dir.path().join("open/.data/postgres");
    assert_eq!(Cluster::placed_in(&open, &base).unwrap(), open);
    // So is one that holds a cluster already, reachable or not: the start then says what is
    // wrong, rather than a new, empty cluster taking its place.
    let existing = private.join("old/.data/postgres");
    fs::create_dir_all(existing.join("data")).unwrap();
    fs::write(existing.join("data/PG_VERSION"), "15\n").unwrap();
    assert_eq!(Cluster::placed_in(&existing, &base).unwrap(), existing);
}

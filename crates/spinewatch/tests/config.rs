//! The config file: the example in `deploy/` is the defaults, lists every key, and bad keys
//! are refused with their name and the file's.
//!
//! `spinewatch` is a binary crate with no library to import, so the module is compiled in
//! here from its source; it depends on external crates only for that reason.

#[allow(dead_code)]
#[path = "../src/config.rs"]
mod config;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use config::{Config, Overrides};
use spinewatch_infer::ExecutionProvider;

fn example_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy/spinewatch.example.toml")
}

/// `section.key` for every key in a TOML document.
fn keys(table: &toml::Table) -> BTreeSet<String> {
    let mut keys = BTreeSet::new();
    for (section, value) in table {
        match value.as_table() {
            Some(inner) => keys.extend(inner.keys().map(|key| format!("{section}.{key}"))),
            None => {
                keys.insert(section.clone());
            }
        }
    }
    keys
}

#[test]
fn example_file_is_the_defaults() {
    let config = Config::load(Some(&example_path())).expect("example parses");
    assert_eq!(config, Config::default());
}

#[test]
fn example_file_lists_every_key() {
    // Keys without a fixed default (`Option`s) appear commented out as `# key = value`: make
    // them real, then the example must name exactly the keys of a fully set config.
    let text = std::fs::read_to_string(example_path()).expect("read example");
    let uncommented: String = text
        .lines()
        .map(|line| match line.strip_prefix("# ") {
            Some(rest)
                if rest.split_once(" = ").is_some_and(|(key, _)| {
                    !key.is_empty() && key.bytes().all(|b| b.is_ascii_lowercase() || b == b'_')
                }) =>
            {
                rest
            }
            _ => line,
        })
        .map(|line| format!("{line}\n"))
        .collect();
    let parsed = Config::parse(&uncommented).expect("uncommented example parses");
    assert!(parsed.storage.spool_dir.is_some() && parsed.runtime.ort_dylib.is_some());

    let mut full = Config::default();
    full.storage.spool_dir = Some(PathBuf::from("spool"));
    full.storage.database_path = Some(PathBuf::from("db.sqlite"));
    full.storage.patient_key_secret = Some(PathBuf::from("patient-key.secret"));
    full.runtime.ort_dylib = Some(PathBuf::from("libonnxruntime.so"));
    let expected = keys(&toml::Table::try_from(&full).expect("serialise"));
    let listed = keys(&uncommented.parse::<toml::Table>().expect("toml"));
    assert_eq!(
        listed, expected,
        "deploy/spinewatch.example.toml must list every key"
    );
}

#[test]
fn missing_file_gives_defaults_and_derived_paths() {
    let config = Config::load(None).expect("defaults");
    assert_eq!(config.storage.data_dir, Path::new("data"));
    assert_eq!(config.storage.spool_dir(), Path::new("data/spool"));
    assert_eq!(
        config.storage.database_path(),
        Path::new("data/spinewatch.sqlite")
    );
    assert_eq!(config.runtime.execution_provider, ExecutionProvider::Cpu);
    assert!(!config.runtime.allow_cpu_fallback);
    assert_eq!(config.runtime.ort_dylib, None);
}

#[test]
fn data_dir_override_moves_derived_paths_only() {
    let config = Config::parse("[storage]\ndatabase_path = \"/srv/db.sqlite\"\n")
        .expect("parse")
        .with_overrides(Overrides {
            data_dir: Some(Path::new("/var/lib/spinewatch")),
            ..Overrides::default()
        });
    assert_eq!(
        config.storage.spool_dir(),
        Path::new("/var/lib/spinewatch/spool")
    );
    assert_eq!(config.storage.database_path(), Path::new("/srv/db.sqlite"));
}

#[test]
fn serve_flags_override_the_file() {
    let config = Config::parse(
        "[dicom]\nbind = \"0.0.0.0:104\"\nallowed_calling_aes = [{ ae_title = \"PACS\", host = \"10.1.2.3\" }]\n\
         [study]\nquiet_period_secs = 120\nunknown_age = \"analyse\"\n",
    )
    .expect("parse")
    .with_overrides(Overrides {
        dicom_addr: Some("127.0.0.1:11112".parse().unwrap()),
        quiet_period_secs: Some(3),
        ..Overrides::default()
    });
    assert_eq!(config.dicom.bind, "127.0.0.1:11112".parse().unwrap());
    assert_eq!(config.dicom.allowed_calling_aes.len(), 1);
    assert_eq!(config.dicom.allowed_calling_aes[0].ae_title, "PACS");
    assert_eq!(config.study.quiet_period_secs, 3);
    assert_eq!(config.study.unknown_age, config::UnknownAgePolicy::Analyse);
    // Not overridden: the file's value, or the default.
    assert_eq!(config.web.bind, "127.0.0.1:8080".parse().unwrap());
    assert!(Config::parse("[study]\nunknown_age = \"maybe\"\n").is_err());
}

#[test]
fn sections_and_values_parse() {
    let config = Config::parse(
        "[runtime]\nexecution_provider = \"tensorrt\"\nallow_cpu_fallback = true\n\
         ort_dylib = \"/opt/ort/libonnxruntime.so.1.31.1\"\n",
    )
    .expect("parse");
    assert_eq!(
        config.runtime.execution_provider,
        ExecutionProvider::TensorRt
    );
    assert!(config.runtime.allow_cpu_fallback);
    assert_eq!(config.storage, Config::default().storage);
}

#[test]
fn unknown_key_is_refused_naming_it_and_the_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("spinewatch.toml");
    std::fs::write(&path, "[storage]\ndata_dri = \"/srv\"\n").expect("write");
    let err = Config::load(Some(&path)).expect_err("unknown key");
    let message = format!("{err:#}");
    assert!(message.contains("data_dri"), "{message}");
    assert!(message.contains(&path.display().to_string()), "{message}");

    let err = Config::parse("[stroage]\n").expect_err("unknown section");
    assert!(format!("{err:#}").contains("stroage"), "{err:#}");
}

#[test]
fn bad_provider_is_refused_naming_the_value() {
    let err = Config::parse("[runtime]\nexecution_provider = \"gpu\"\n").expect_err("bad value");
    let message = format!("{err:#}");
    assert!(
        message.contains("gpu") && message.contains("execution_provider"),
        "{message}"
    );
}

#[test]
fn binary_refuses_a_bad_config_before_any_check() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("bad.toml");
    std::fs::write(&path, "[runtime]\nexecution_provder = \"cuda\"\n").expect("write");
    let output = Command::new(env!("CARGO_BIN_EXE_spinewatch"))
        .args(["doctor", "--json", "--config"])
        .arg(&path)
        .output()
        .expect("run spinewatch");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success());
    assert!(output.stdout.is_empty(), "no report for a bad config");
    assert!(stderr.contains("execution_provder"), "{stderr}");
    assert!(stderr.contains(&path.display().to_string()), "{stderr}");

    let missing = dir.path().join("absent.toml");
    let output = Command::new(env!("CARGO_BIN_EXE_spinewatch"))
        .arg("--config")
        .arg(&missing)
        .arg("doctor")
        .output()
        .expect("run spinewatch");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success());
    assert!(
        stderr.contains("could not read config file") && stderr.contains("absent.toml"),
        "{stderr}"
    );
}

//! The config parsers under hostile input: manifests, policy files, mount
//! specs, address rules, sizes and durations. Property tests generate
//! arbitrary text and near-valid documents with extreme values; each parser
//! must answer with a value or an error that names the file and line, never
//! panic or hang. `make fuzz` runs the same properties with many more cases
//! (`PROPTEST_CASES`).

use std::path::Path;

use corral::PolicyFile;
use corral::manifest::Manifest;
use corral::policy::AddrRule;
use corral::units::{parse_duration, parse_size};
use corral::vfs::MountSpec;
use proptest::prelude::*;

/// Values that have broken parsers before: overflow, zero, negatives,
/// unit edge cases, wrong types.
fn extreme_value() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("0".to_string()),
        Just("-1".to_string()),
        Just("4294967295".to_string()),
        Just("4294967296".to_string()),
        Just("18446744073709551615".to_string()),
        Just("99999999999999999999999".to_string()),
        Just("\"16EiB\"".to_string()),
        Just("\"17EiB\"".to_string()),
        Just("\"0B\"".to_string()),
        Just("\"1e400\"".to_string()),
        Just("\"584942417356y\"".to_string()),
        Just("\"18446744073709551615s\"".to_string()),
        Just("\"\"".to_string()),
        Just("[]".to_string()),
        Just("{}".to_string()),
        Just("true".to_string()),
        Just("1.5".to_string()),
        "\"[^\"\\\\]{0,12}\"",
        any::<u64>().prop_map(|n| n.to_string()),
        any::<i64>().prop_map(|n| n.to_string()),
    ]
}

const PROFILE_KEYS: &[&str] = &[
    "memory",
    "cpu",
    "timeout",
    "fuel",
    "stack",
    "instances",
    "tables",
    "memories",
    "env",
    "mounts",
    "stdout",
    "stderr",
    "extends",
];

const WORKER_KEYS: &[&str] = &[
    "name",
    "component",
    "count",
    "args",
    "env",
    "memory",
    "cpu",
    "timeout",
    "mounts",
    "after",
    "policy",
];

/// A policy file of a few profiles whose keys take extreme values, some
/// extending each other (cycles included).
fn policy_document() -> impl Strategy<Value = String> {
    let entry = (prop::sample::select(PROFILE_KEYS), extreme_value());
    let profile = (0..4usize, prop::collection::vec(entry, 0..6));
    prop::collection::vec(profile, 1..4).prop_map(|profiles| {
        let mut text = String::new();
        for (i, (parent, entries)) in profiles.iter().enumerate() {
            text += &format!("[profiles.p{i}]\n");
            for (key, value) in entries {
                if *key == "extends" {
                    text += &format!("extends = \"p{parent}\"\n");
                } else {
                    text += &format!("{key} = {value}\n");
                }
            }
            text += &format!("[profiles.p{i}.spawn]\n");
            text += &format!("max-children = {}\n", entries.len() * 1_000_000_000);
        }
        text
    })
}

/// A manifest of a few workers whose keys take extreme values.
fn manifest_document() -> impl Strategy<Value = String> {
    let entry = (prop::sample::select(WORKER_KEYS), extreme_value());
    let worker = prop::collection::vec(entry, 0..6);
    (
        prop::collection::vec(worker, 1..4),
        extreme_value(),
        extreme_value(),
    )
        .prop_map(|(workers, capacity, message)| {
            let mut text =
                format!("[queues.q]\ncapacity = {capacity}\nmax-message = {message}\n\n");
            for (i, entries) in workers.iter().enumerate() {
                text += &format!("[[worker]]\nname = \"w{i}\"\ncomponent = \"w.wasm\"\n");
                for (key, value) in entries {
                    if *key != "name" && *key != "component" {
                        text += &format!("{key} = {value}\n");
                    }
                }
            }
            text
        })
}

/// An error of a config file must say which file (and so, where to look).
fn names_the_file(message: &str, file: &str) -> Result<(), TestCaseError> {
    prop_assert!(!message.is_empty());
    prop_assert!(message.contains(file), "no file name in: {message}");
    Ok(())
}

/// Whether `message` points at a line of `file`: `file:LINE: ...`, or a
/// TOML syntax error's `file: TOML parse error at line LINE`.
fn points_at_a_line(message: &str, file: &str) -> bool {
    let after = |marker: &str| {
        message
            .split(marker)
            .nth(1)
            .is_some_and(|rest| rest.starts_with(|c: char| c.is_ascii_digit()))
    };
    message.contains(file) && (after(&format!("{file}:")) || after(" at line "))
}

proptest! {
    #[test]
    fn arbitrary_text_never_breaks_a_parser(text in "\\PC{0,200}") {
        let _ = parse_size(&text);
        let _ = parse_duration(&text);
        let _ = text.parse::<MountSpec>();
        let _ = text.parse::<AddrRule>();
        if let Err(e) = Manifest::parse(Path::new("fuzz.toml"), &text) {
            names_the_file(&e.to_string(), "fuzz.toml")?;
        }
        if let Err(e) = PolicyFile::parse(Path::new("fuzz-policy.toml"), &text) {
            names_the_file(&e.to_string(), "fuzz-policy.toml")?;
        }
    }

    #[test]
    fn mount_specs_and_address_rules_of_near_valid_shape(
        source in prop_oneof![Just("@shared"), Just("@scratch"), Just("@shared/a/../.."), Just("./d"), Just("")],
        guest in "(/[a-z.]{0,3}){0,4}",
        mode in prop_oneof![Just(""), Just(":ro"), Just(":rw"), Just(":xx"), Just("::")],
        host in prop_oneof![Just("127.0.0.1"), Just("[::1]"), Just("10.0.0.0/8"), Just("*"), Just("300.1.1.1"), Just("[::1")],
        port in prop_oneof![Just(":80".to_string()), Just(":0-65535".to_string()), Just(":65536".to_string()), Just(":9-1".to_string()), any::<u32>().prop_map(|p| format!(":{p}")), Just(String::new())],
    ) {
        let _ = format!("{source}:{guest}{mode}").parse::<MountSpec>();
        let _ = format!("{host}{port}").parse::<AddrRule>();
    }

    #[test]
    fn policy_files_with_extreme_values_resolve_or_point_at_a_line(text in policy_document()) {
        match PolicyFile::parse(Path::new("extreme.toml"), &text) {
            Err(e) => {
                let message = e.to_string();
                names_the_file(&message, "extreme.toml")?;
                prop_assert!(points_at_a_line(&message, "extreme.toml"), "no line in: {message}");
            }
            Ok(file) => {
                for name in ["p0", "p1", "p2", "p3"] {
                    if let Err(e) = file.profile(Some(name)) {
                        names_the_file(&e.to_string(), "extreme.toml")?;
                    }
                }
            }
        }
    }

    #[test]
    fn manifests_with_extreme_values_load_or_point_at_a_line(text in manifest_document()) {
        if let Err(e) = Manifest::parse(Path::new("extreme-manifest.toml"), &text) {
            let message = e.to_string();
            names_the_file(&message, "extreme-manifest.toml")?;
            prop_assert!(points_at_a_line(&message, "extreme-manifest.toml"), "no line in: {message}");
        }
    }
}

/// Values a worker could never run with are refused where they are
/// written: file, line and key.
#[test]
fn impossible_policy_values_are_refused_with_file_line_and_key() {
    for (key, value) in [
        ("stack", "\"16EiB\""),
        ("stack", "\"0B\""),
        ("memory", "\"17EiB\""),
        ("cpu", "\"18446744073709551615s\""),
    ] {
        let text = format!("[profiles.w]\n# a comment\n{key} = {value}\n");
        let error = PolicyFile::parse(Path::new("bad.toml"), &text)
            .and_then(|file| file.profile(Some("w")).map(drop))
            .expect_err(&format!("{key} = {value} was accepted"));
        let message = error.to_string();
        assert!(
            points_at_a_line(&message, "bad.toml"),
            "{key} = {value}: {message}"
        );
        assert!(message.contains('3'), "{key} = {value}: {message}");
        assert!(message.contains(key), "{key} = {value}: {message}");
    }
}

#[test]
fn impossible_manifest_counts_are_refused_with_file_line_and_key() {
    for count in ["0", "4294967295", "-1"] {
        let text = format!("[[worker]]\nname = \"w\"\ncomponent = \"w.wasm\"\ncount = {count}\n");
        let error = Manifest::parse(Path::new("m.toml"), &text)
            .err()
            .unwrap_or_else(|| panic!("count = {count} was accepted"));
        let message = error.to_string();
        assert!(
            points_at_a_line(&message, "m.toml"),
            "count = {count}: {message}"
        );
        assert!(message.contains('4'), "count = {count}: {message}");
        assert!(message.contains("count"), "count = {count}: {message}");
    }
}

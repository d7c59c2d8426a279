//! Unit tests of policy files: inheritance, profile choice and errors.

use super::*;
use crate::policy::{Op, SocketUse};

fn parse(text: &str) -> Result<PolicyFile, PolicyError> {
    PolicyFile::parse(Path::new("dir/policy.toml"), text)
}

const FULL: &str = r#"
[profiles.base]
memory = "64MiB"
cpu = "2s"
timeout = "30s"
env = ["LANG=C"]
mounts = ["@shared:/", "./data:/data"]
stdout = "1KiB"

[profiles.base.network]
connect = ["127.0.0.1:8000-8100"]
lookup = true

[profiles.base.ipc]
queues = { jobs = ["get"], "results-*" = ["put"] }
locks = { "*" = ["*"] }

[profiles.strict]
extends = "base"
memory = "16MiB"

[profiles.strict.network]
connect = []
"#;

#[test]
fn inheritance_and_resolution() {
    let file = parse(FULL).unwrap();
    assert_eq!(file.profile_names(), ["base", "strict"]);
    let strict = file.profile(Some("strict")).unwrap();
    assert_eq!(strict.limits.memory, Some(16 << 20));
    assert_eq!(
        strict.limits.cpu_time,
        Some(Duration::from_secs(2)),
        "inherited"
    );
    assert_eq!(strict.env, ["LANG=C"]);
    assert_eq!(strict.mounts.len(), 2);
    assert!(
        matches!(&strict.mounts[1].source, crate::vfs::MountSource::Host { dir } if dir == Path::new("dir/./data"))
    );
    let p = &strict.policy;
    assert!(p.network.connect.is_empty(), "child replaced connect");
    assert!(p.network.lookup, "but kept lookup");
    assert!(
        !p.network
            .allows("127.0.0.1:8000".parse().unwrap(), SocketUse::Connect)
    );
    let ipc = p.ipc.as_ref().unwrap();
    assert!(ipc.ops_for(ObjectKind::Queue, "jobs").contains(Op::Get));
    assert!(!ipc.ops_for(ObjectKind::Queue, "jobs").contains(Op::Put));
    assert!(
        ipc.ops_for(ObjectKind::Queue, "results-3")
            .contains(Op::Put)
    );
    assert!(ipc.ops_for(ObjectKind::Lock, "any").contains(Op::Acquire));
    assert!(ipc.ops_for(ObjectKind::Pipe, "p").is_empty());
    assert_eq!(p.stdout_limit, Some(1024));
    let base = file.profile(Some("base")).unwrap();
    assert!(
        base.policy
            .network
            .allows("127.0.0.1:8000".parse().unwrap(), SocketUse::Connect)
    );
}

#[test]
fn picking_a_profile() {
    let file = parse(FULL).unwrap();
    let err = file.profile(None).unwrap_err().to_string();
    assert!(
        err.contains("several profiles (base, strict) and none is `default`"),
        "{err}"
    );
    assert!(
        file.profile(Some("nope"))
            .unwrap_err()
            .to_string()
            .contains("no profile `nope`")
    );
    let single = parse("[profiles.only]\nmemory = \"1MiB\"\n").unwrap();
    assert_eq!(single.profile(None).unwrap().name, "only");
}

#[test]
fn errors_name_file_line_and_key() {
    let err = parse("[profiles.a]\nmemroy = \"1MiB\"\n")
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("dir/policy.toml") && err.contains("line 2") && err.contains("memroy"),
        "{err}"
    );
    let err = parse("[profiles.a]\nmemory = \"lots\"\n")
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("line 2") && err.contains("`lots` is not a size"),
        "{err}"
    );
    let err = parse("[profiles.a.network]\nconnect = [\"localhost:80\"]\n")
        .unwrap_err()
        .to_string();
    assert_eq!(
        err.lines().next().unwrap(),
        "dir/policy.toml:2: network.connect: `localhost:80` is not an address rule: write ADDR[/PREFIX]:PORT[-PORT], e.g. 127.0.0.1:8080, 10.0.0.0/8:443, [::1]:8000-8100 or *:53"
    );
    let err = parse("[profiles.a.ipc]\nqueues = { q = [\"send\"] }\n")
        .unwrap_err()
        .to_string();
    assert!(
        err.starts_with("dir/policy.toml:2: ipc.queues.q: `send` is not an operation of a queue"),
        "{err}"
    );
    let err = parse("[profiles.a.ipc]\nqeues = { q = [\"put\"] }\n")
        .unwrap_err()
        .to_string();
    assert!(err.contains("ipc: unknown key `qeues`"), "{err}");
    let err = parse("[profiles.a]\nextends = \"ghost\"\n")
        .unwrap_err()
        .to_string();
    assert_eq!(
        err,
        "dir/policy.toml:2: `extends = \"ghost\"`: no such profile"
    );
    let err = parse("[profiles.a]\nextends = \"b\"\n[profiles.b]\nextends = \"a\"\n")
        .unwrap_err()
        .to_string();
    assert!(err.contains("extends itself"), "{err}");
    let err = parse("[profiles.a]\nmounts = [\"nowhere\"]\n")
        .unwrap_err()
        .to_string();
    assert!(err.starts_with("dir/policy.toml:2: mounts:"), "{err}");
    assert!(parse("").unwrap_err().to_string().contains("no profiles"));
}

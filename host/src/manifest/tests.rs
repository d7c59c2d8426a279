//! Unit tests of manifest parsing, checking and object declaration.

use std::path::Path;

use super::*;

fn parse(text: &str) -> Result<Manifest, ManifestError> {
    Manifest::parse(Path::new("dir/corral.toml"), text)
}

#[test]
fn full_manifest() {
    let m = parse(
        r#"
[defaults]
memory = "64MiB"
timeout = "10s"

[[worker]]
name = "hello"
component = "hello.wasm"
count = 3
args = ["a"]
env = { K = "V" }
cpu = "2s"
"#,
    )
    .unwrap();
    let w = &m.workers[0];
    assert_eq!(w.component.get_ref(), Path::new("dir/hello.wasm"));
    assert_eq!(w.instance_names(), ["hello-1", "hello-2", "hello-3"]);
    let limits = w.effective_limits(&m.defaults);
    assert_eq!(limits.memory, Some(64 << 20));
    assert_eq!(limits.cpu_time, Some(Duration::from_secs(2)));
    assert_eq!(limits.wall_time, Some(Duration::from_secs(10)));
}

#[test]
fn unknown_key_names_line_and_key() {
    let err = parse("[[worker]]\nname = \"a\"\ncomponent = \"a.wasm\"\ncuont = 2\n")
        .unwrap_err()
        .to_string();
    assert!(err.contains("line 4"), "{err}");
    assert!(err.contains("cuont"), "{err}");
}

#[test]
fn bad_size_names_line() {
    let err =
        parse("[defaults]\nmemory = \"lots\"\n[[worker]]\nname = \"a\"\ncomponent = \"a.wasm\"\n")
            .unwrap_err()
            .to_string();
    assert!(err.contains("line 2"), "{err}");
    assert!(err.contains("`lots` is not a size"), "{err}");
}

#[tokio::test]
async fn objects_are_declared_in_the_run() {
    let m = parse(
        r#"
[[worker]]
name = "w"
component = "w.wasm"
count = 2

[queues.jobs]
capacity = 10
max-message = "1KiB"
max-bytes = "4KiB"
acknowledged = true

[pipes.chat]
ends = ["w-1", "w-2"]

[locks.state]
[conditions.ready]
lock = "state"
[semaphores.slots]
value = 2
[events.go]
[barriers.start]
parties = 2
"#,
    )
    .unwrap();
    let run = Run::new();
    m.declare_objects(&run);
    let q = run.objects().queue("jobs").unwrap();
    assert_eq!(q.capacity(), 10);
    assert!(q.is_acknowledged());
    assert_eq!(
        q.check_batch([1024; 5].into_iter()),
        Err(IpcError::TooLarge(4096))
    );
    assert!(run.objects().pipe("chat").is_ok());
    assert!(run.objects().condition("ready").is_ok());
    assert_eq!(run.objects().semaphore("slots").unwrap().value().await, 2);
    assert_eq!(run.objects().barrier("start").unwrap().parties(), 2);
    assert!(run.objects().event("go").is_ok());
}

#[test]
fn backend_table_and_object_placement() {
    let m = parse(
            "[backend]\nurl = \"redis://127.0.0.1:1/0\"\nnamespace = \"shop\"\nlease = \"2s\"\n\
             default = \"local\"\n[queues.jobs]\nbackend = \"redis\"\n[locks.l]\nbackend = \"local\"\n\
             [[worker]]\nname = \"w\"\ncomponent = \"w.wasm\"\n",
        )
        .unwrap();
    let backend = m.backend.as_ref().unwrap();
    assert_eq!(backend.namespace.as_deref(), Some("shop"));
    assert_eq!(backend.lease, Some(Duration::from_secs(2)));
    assert_eq!(backend.default, Some(Placement::Local));
    assert_eq!(m.queues["jobs"].backend, Some(Placement::Redis));
    // A Redis object without a Redis server is an error that says so.
    let err = m.declare_objects_with(&Run::new(), None).unwrap_err();
    assert!(err.to_string().contains("no Redis URL"), "{err}");
    let err = parse("[backend]\nurl = 1\n[[worker]]\nname = \"w\"\ncomponent = \"w.wasm\"\n")
        .unwrap_err()
        .to_string();
    assert!(err.contains("url"), "{err}");
    assert!(
        parse("[pipes.p]\nbackend = \"redis\"\n[[worker]]\nname = \"w\"\ncomponent = \"w.wasm\"\n")
            .is_err()
    );
}

#[test]
fn object_references_are_checked() {
    let base = "[[worker]]\nname = \"w\"\ncomponent = \"w.wasm\"\n";
    let err = parse(&format!("{base}[pipes.p]\nends = [\"w\", \"ghost\"]\n"))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("end `ghost` is not the name of any worker"),
        "{err}"
    );
    let err = parse(&format!("{base}[conditions.c]\nlock = \"nope\"\n"))
        .unwrap_err()
        .to_string();
    assert!(err.contains("lock `nope` is not declared"), "{err}");
    let err = parse(&format!("{base}[queues.q]\ncapacityy = 3\n"))
        .unwrap_err()
        .to_string();
    assert!(err.contains("unknown field `capacityy`"), "{err}");
}

#[test]
fn after_names_earlier_workers_only() {
    let two = "[[worker]]\nname = \"a\"\ncomponent = \"a.wasm\"\n[[worker]]\nname = \"b\"\ncomponent = \"b.wasm\"\n";
    let ok = parse(&format!("{two}after = [\"a\"]\n")).unwrap();
    assert_eq!(ok.workers[1].after, ["a"]);
    let err = parse(&format!("{two}after = [\"c\"]\n"))
        .unwrap_err()
        .to_string();
    assert!(err.contains("`after` names `c`"), "{err}");
    let err = parse(&format!("{two}after = [\"b\"]\n"))
        .unwrap_err()
        .to_string();
    assert!(err.contains("`after` names `b`"), "{err}");
}

#[test]
fn semantic_errors_point_at_line() {
    let err = parse("[[worker]]\nname = \"a\"\ncomponent = \"a.wasm\"\ncount = 0\n")
        .unwrap_err()
        .to_string();
    assert_eq!(
        err,
        "dir/corral.toml:4: worker `a`: count must be from 1 to 1000000"
    );
    let err = parse("[[worker]]\nname = \"a\"\ncomponent = \"a.wasm\"\n[[worker]]\nname = \"a\"\ncomponent = \"b.wasm\"\n")
            .unwrap_err()
            .to_string();
    assert_eq!(err, "dir/corral.toml:5: two workers are named `a`");
    assert!(parse("").unwrap_err().to_string().contains("no workers"));
}

const STAGES: &str = "[queues.a]\n[queues.b]\n[[worker]]\nname = \"w\"\ncomponent = \"w.wasm\"\n";

#[test]
fn pools_take_defaults_and_resolve_paths() {
    let m = parse(&format!(
        "{STAGES}[[pool]]\nname = \"sq\"\ncomponent = \"sq.wasm\"\ninput = \"a\"\noutput = \"b\"\n\
             workers = 3\nproducers = [\"w\"]\nmounts = [\"data:/data\"]\ntask-timeout = \"2s\"\n"
    ))
    .unwrap();
    let p = &m.pools[0];
    assert_eq!(p.component.get_ref(), Path::new("dir/sq.wasm"));
    assert_eq!((p.workers, p.chunk, p.stops), (Some(3), 1, 1));
    assert_eq!(p.producers.as_deref(), Some(&["w".to_string()][..]));
    assert_eq!(p.task_timeout, Some(Duration::from_secs(2)));
    assert_eq!(p.mounts[0].guest_path, "/data");
}

#[test]
fn pool_errors_name_the_line_and_the_problem() {
    let pool = |rest: &str| {
        parse(&format!(
            "{STAGES}[[pool]]\nname = \"sq\"\ncomponent = \"sq.wasm\"\n{rest}"
        ))
        .unwrap_err()
        .to_string()
    };
    assert_eq!(
        pool("input = \"a\"\noutput = \"c\"\n"),
        "dir/corral.toml:10: pool `sq`: output queue `c` is not declared in [queues]"
    );
    assert!(pool("input = \"a\"\noutput = \"a\"\n").contains("input and output are both `a`"));
    assert!(
        pool("input = \"a\"\noutput = \"b\"\nproducers = [\"x\"]\n")
            .contains("producer `x` is not a [[worker]]")
    );
    assert!(pool("input = \"a\"\noutput = \"b\"\nworkers = 0\n").contains("at least 1"));
    assert!(pool("output = \"b\"\n").contains("missing field `input`"));
    let err = parse(&format!(
        "{STAGES}[[pool]]\nname = \"w\"\ncomponent = \"w.wasm\"\ninput = \"a\"\noutput = \"b\"\n"
    ))
    .unwrap_err()
    .to_string();
    assert!(err.contains("two workers or pools are named `w`"), "{err}");
}

#[test]
fn a_slash_is_reserved_for_the_names_of_spawned_children() {
    let worker = "[[worker]]\nname = \"boss/helper\"\ncomponent = \"a.wasm\"\n".to_string();
    let pool = format!(
        "{STAGES}[[pool]]\nname = \"boss/helper\"\ncomponent = \"sq.wasm\"\n\
         input = \"a\"\noutput = \"b\"\n"
    );
    for text in [worker, pool] {
        let err = parse(&text).unwrap_err().to_string();
        assert!(err.contains("no spaces or `/`"), "{err}");
    }
}

#[test]
fn groups_nest_and_their_members_are_checked() {
    let workers = "[[worker]]\nname = \"a\"\ncomponent = \"a.wasm\"\ncount = 2\n\
                   [[worker]]\nname = \"b\"\ncomponent = \"b.wasm\"\n";
    let m = parse(&format!(
        "{workers}[[group]]\nname = \"top\"\nmembers = [\"inner\", \"b\"]\nmax-restarts = 2\n\
         [[group]]\nname = \"inner\"\nstrategy = \"rest-for-one\"\nmembers = [\"a\"]\n"
    ))
    .unwrap();
    assert_eq!(
        m.groups[1].strategy,
        crate::supervisor::Strategy::RestForOne
    );
    assert_eq!(m.group_of("inner").unwrap().name, "top");
    let memberships = m.supervision();
    let mut names: Vec<&String> = memberships.keys().collect();
    names.sort();
    assert_eq!(names, ["a-1", "a-2", "b"]);

    let error = |groups: &str| {
        parse(&format!("{workers}{groups}"))
            .unwrap_err()
            .to_string()
    };
    let cases = [
        (
            "[[group]]\nname = \"g\"\nmembers = [\"c\"]\n",
            "member `c` is not a [[worker]] or [[group]]",
        ),
        (
            "[[group]]\nname = \"g\"\nmembers = [\"a\"]\n[[group]]\nname = \"h\"\nmembers = [\"a\"]\n",
            "`a` is a member of both `g` and `h`",
        ),
        (
            "[[group]]\nname = \"g\"\nmembers = [\"h\"]\n[[group]]\nname = \"h\"\nmembers = [\"g\"]\n",
            "is a member of itself",
        ),
        ("[[group]]\nname = \"a\"\nmembers = [\"b\"]\n", "named `a`"),
        (
            "[[group]]\nname = \"g\"\nmembers = []\n",
            "group `g` has no members",
        ),
        (
            "[[group]]\nname = \"g\"\nstrategy = \"all-for-one\"\nmembers = [\"a\"]\n",
            "unknown variant `all-for-one`",
        ),
    ];
    for (groups, wanted) in cases {
        let message = error(groups);
        assert!(message.contains(wanted), "{wanted}: {message}");
    }
    // A member leaves its restarts and its start to the group.
    let message = parse(
        "[[worker]]\nname = \"a\"\ncomponent = \"a.wasm\"\nmax-restarts = 3\n\
         [[group]]\nname = \"g\"\nmembers = [\"a\"]\n",
    )
    .unwrap_err()
    .to_string();
    assert!(
        message.contains("corral.toml:4:")
            && message.contains("set `max-restarts` on the [[group]]"),
        "{message}"
    );
    let message = parse(
        "[[worker]]\nname = \"a\"\ncomponent = \"a.wasm\"\n\
         [[worker]]\nname = \"b\"\ncomponent = \"b.wasm\"\nafter = [\"a\"]\n\
         [[group]]\nname = \"g\"\nmembers = [\"b\"]\n",
    )
    .unwrap_err()
    .to_string();
    assert!(message.contains("drop `after`"), "{message}");
}

#[test]
fn a_regranted_pipe_names_its_ends() {
    let message = parse(
        "[[worker]]\nname = \"a\"\ncomponent = \"a.wasm\"\n\
         [pipes.p]\nregrant = true\n",
    )
    .unwrap_err()
    .to_string();
    assert!(
        message.contains("corral.toml:5:") && message.contains("`regrant` needs `ends`"),
        "{message}"
    );
}

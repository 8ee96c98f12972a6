//! Table tests of what node cleanup removes.

use std::time::Duration;

use k8s_openapi::jiff::{SignedDuration, Timestamp};

use super::decide::{ContainerInfo, ImageInfo, Inventory, Rules, State, VolumeInfo, decide};

fn now() -> Timestamp {
    "2026-06-01T12:00:00Z".parse().unwrap()
}

fn ago(mins: i64) -> Option<Timestamp> {
    Some(now() - SignedDuration::from_mins(mins))
}

fn container(
    id: &str,
    image: &str,
    state: State,
    finished_mins: i64,
    tracked: bool,
) -> ContainerInfo {
    ContainerInfo {
        id: id.into(),
        name: id.into(),
        image: image.into(),
        state,
        created: ago(finished_mins + 10),
        finished: (state == State::Exited)
            .then(|| ago(finished_mins))
            .flatten(),
        tracked,
    }
}

fn image(id: &str, tags: &[&str], created_mins: i64, size: u64, pinned: bool) -> ImageInfo {
    ImageInfo {
        id: id.into(),
        tags: tags.iter().map(|t| t.to_string()).collect(),
        created: ago(created_mins),
        size,
        pinned,
    }
}

fn rules() -> Rules {
    Rules {
        container_grace: Duration::from_secs(3600),
        image_grace: Duration::from_secs(3600),
        volumes: true,
        unused_images_above: Some(80.0),
    }
}

#[test]
fn what_node_cleanup_removes() {
    type Row = (&'static str, Inventory, Rules, Vec<&'static str>);
    let inv = |containers: Vec<ContainerInfo>, images: Vec<ImageInfo>| Inventory {
        containers,
        images,
        ..Default::default()
    };
    let table: Vec<Row> = vec![
        (
            "an exited container past its grace",
            inv(
                vec![container("old", "i", State::Exited, 120, false)],
                vec![],
            ),
            rules(),
            vec!["container old"],
        ),
        (
            "an exited container within its grace",
            inv(
                vec![container("new", "i", State::Exited, 10, false)],
                vec![],
            ),
            rules(),
            vec![],
        ),
        (
            "a running container",
            inv(
                vec![container("run", "i", State::Running, 500, false)],
                vec![],
            ),
            rules(),
            vec![],
        ),
        (
            "a created, never started container",
            inv(
                vec![container("made", "i", State::Created, 500, false)],
                vec![],
            ),
            rules(),
            vec![],
        ),
        (
            "an exited container the kubelet still tracks",
            inv(
                vec![container("pod", "i", State::Exited, 500, true)],
                vec![],
            ),
            rules(),
            vec![],
        ),
        (
            "a dangling image past its grace",
            inv(vec![], vec![image("sha256:d", &[], 120, 10, false)]),
            rules(),
            vec!["image sha256:d"],
        ),
        (
            "a dangling image within its grace",
            inv(vec![], vec![image("sha256:d", &[], 10, 10, false)]),
            rules(),
            vec![],
        ),
        (
            "a dangling image a stopped container uses",
            inv(
                vec![container("stopped", "sha256:d", State::Exited, 10, false)],
                vec![image("sha256:d", &[], 120, 10, false)],
            ),
            rules(),
            vec![],
        ),
        (
            "a dangling image an old exited container uses: the container goes, the image next pass",
            inv(
                vec![container("old", "sha256:d", State::Exited, 120, false)],
                vec![image("sha256:d", &[], 120, 10, false)],
            ),
            rules(),
            vec!["container old"],
        ),
        (
            "a pinned dangling image",
            inv(vec![], vec![image("sha256:p", &[], 120, 10, true)]),
            rules(),
            vec![],
        ),
        (
            "a tagged unused image, disk not full",
            inv(vec![], vec![image("sha256:t", &["app:1"], 120, 10, false)]),
            rules(),
            vec![],
        ),
    ];
    let mut failed = Vec::new();
    let n = table.len();
    for (name, inv, r, want) in table {
        let got: Vec<String> = decide(&inv, &r, now())
            .iter()
            .map(|r| format!("{} {}", r.kind, r.id))
            .collect();
        if got != want {
            failed.push(format!("{name}: got {got:?}, want {want:?}"));
        }
    }
    assert!(
        failed.is_empty(),
        "{} of {n}:\n{}",
        failed.len(),
        failed.join("\n")
    );
}

#[test]
fn volumes_and_a_full_disk() {
    let mut inv = Inventory {
        volumes: vec![
            VolumeInfo {
                name: "used".into(),
                dangling: false,
            },
            VolumeInfo {
                name: "loose".into(),
                dangling: true,
            },
        ],
        ..Default::default()
    };
    let names = |inv: &Inventory, r: &Rules| -> Vec<String> {
        decide(inv, r, now())
            .iter()
            .map(|r| format!("{} {}", r.kind, r.id))
            .collect()
    };
    assert_eq!(names(&inv, &rules()), ["volume loose"]);
    let mut off = rules();
    off.volumes = false;
    assert!(names(&inv, &off).is_empty());
    // 90% of 1,000 bytes used: unused tagged images go, oldest first, until
    // the estimate is at 80%; one in use and one too new stay.
    inv.volumes.clear();
    inv.disk_used_percent = Some(90.0);
    inv.disk_bytes = Some(1000);
    inv.images = vec![
        image("sha256:a", &["a:1"], 300, 60, false),
        image("sha256:b", &["b:1"], 200, 60, false),
        image("sha256:c", &["c:1"], 100, 60, false),
        image("sha256:used", &["u:1"], 400, 500, false),
        image("sha256:fresh", &["f:1"], 5, 500, false),
    ];
    inv.containers = vec![container("r", "sha256:used", State::Running, 0, true)];
    assert_eq!(names(&inv, &rules()), ["image sha256:a", "image sha256:b"]);
    let mut never = rules();
    never.unused_images_above = None;
    assert!(names(&inv, &never).is_empty());
}

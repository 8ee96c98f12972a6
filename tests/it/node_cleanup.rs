//! Node cleanup against real container runtimes: a private dockerd (vfs,
//! no iptables, no bridge) and a private containerd, each with its own
//! socket and roots (scripts/lib/containers.sh), and images made offline
//! from a rootfs holding one static binary.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use clusterctl::controllers::node_cleanup::Backend;
use clusterctl::controllers::node_cleanup::component::pass;
use clusterctl::controllers::node_cleanup::containerd::ContainerdBackend;
use clusterctl::controllers::node_cleanup::decide::Rules;
use clusterctl::controllers::node_cleanup::docker::DockerBackend;
use sha2::Digest;

use crate::support::{root, tool};

/// A private daemon, stopped (and its directory removed) when dropped.
struct Daemon {
    dir: PathBuf,
    kind: &'static str,
}

impl Daemon {
    fn start(kind: &'static str) -> Option<Daemon> {
        tool(if kind == "docker" {
            "dockerd"
        } else {
            "containerd"
        })?;
        tool("gcc")?;
        // Short: a unix socket path holds at most 107 bytes.
        let dir = PathBuf::from(format!("/tmp/cc-{kind}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let script = root().join("scripts/lib/containers.sh");
        let out = Command::new(&script)
            .arg(format!("{kind}-start"))
            .arg(&dir)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        Command::new(&script)
            .arg("watch")
            .arg(&dir)
            .arg(std::process::id().to_string())
            .output()
            .unwrap();
        Some(Daemon { dir, kind })
    }

    fn socket(&self) -> String {
        let name = if self.kind == "docker" {
            "docker.sock"
        } else {
            "containerd.sock"
        };
        self.dir.join(name).display().to_string()
    }

    /// Runs the daemon's CLI; its stdout.
    fn cli(&self, args: &[&str]) -> String {
        let mut c = if self.kind == "docker" {
            let mut c = Command::new("docker");
            c.arg("-H").arg(format!("unix://{}", self.socket()));
            c
        } else {
            let mut c = Command::new("ctr");
            c.args(["--address", &self.socket(), "-n", "k8s.io"]);
            c
        };
        let out = c.args(args).output().unwrap();
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).to_string()
    }

    fn lines(&self, args: &[&str]) -> Vec<String> {
        let mut v: Vec<String> = self
            .cli(args)
            .lines()
            .map(|l| l.trim().to_string())
            .filter(|l| !l.is_empty())
            .collect();
        v.sort();
        v
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = Command::new(root().join("scripts/lib/containers.sh"))
            .arg(format!("{}-stop", self.kind))
            .arg(&self.dir)
            .output();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A rootfs with one static binary, `/exit [N]`, that exits with N; `tag`
/// makes the content (and so the image) differ.
fn rootfs(dir: &Path, tag: &str) -> PathBuf {
    let fs = dir.join(format!("rootfs-{tag}"));
    std::fs::create_dir_all(&fs).unwrap();
    let src = dir.join("exit.c");
    std::fs::write(
        &src,
        "int main(int c, char **v) { return c > 1 ? v[1][0] - '0' : 0; }\n",
    )
    .unwrap();
    let bin = dir.join("exit");
    if !bin.exists() {
        let out = Command::new("gcc")
            .args(["-static", "-O2", "-o"])
            .arg(&bin)
            .arg(&src)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    std::fs::copy(&bin, fs.join("exit")).unwrap();
    std::fs::write(fs.join("tag"), tag).unwrap();
    fs
}

fn tar(dir: &Path, out: &Path) {
    let st = Command::new("tar")
        .arg("-C")
        .arg(dir)
        .arg("-cf")
        .arg(out)
        .arg(".")
        .status()
        .unwrap();
    assert!(st.success());
}

fn rules() -> Rules {
    Rules {
        container_grace: Duration::from_secs(3),
        image_grace: Duration::from_secs(3),
        volumes: true,
        unused_images_above: None,
    }
}

fn removed(p: &clusterctl::controllers::node_cleanup::component::Pass) -> Vec<String> {
    let mut v: Vec<String> = p
        .removed
        .iter()
        .map(|r| format!("{} {}", r.kind, r.name))
        .collect();
    v.sort();
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn docker_exited_containers_dangling_images_and_volumes() {
    let Some(d) = Daemon::start("docker") else {
        return;
    };
    let work = tempfile::tempdir().unwrap();
    let import = |tag: &str, name: &str| {
        let t = work.path().join(format!("{tag}.tar"));
        tar(&rootfs(work.path(), tag), &t);
        d.cli(&["import", t.to_str().unwrap(), name])
            .trim()
            .to_string()
    };
    let tiny = import("a", "tiny:1");
    let dangling_old = import("b", "tiny:dangle");
    import("c", "tiny:dangle"); // the first tiny:dangle is now dangling
    let used_old = import("d", "tiny:used");
    for (name, code) in [("exited-old", "0"), ("exited-old-3", "3")] {
        let out = Command::new("docker")
            .args([
                "-H",
                &format!("unix://{}", d.socket()),
                "run",
                "--network",
                "none",
                "--name",
                name,
                "tiny:1",
                "/exit",
                code,
            ])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(code.parse().unwrap()));
    }
    d.cli(&["volume", "create", "vol-used"]);
    d.cli(&[
        "create",
        "--name",
        "holder",
        "-v",
        "vol-used:/data",
        "tiny:1",
        "/exit",
    ]);
    d.cli(&["volume", "create", "vol-loose"]);
    // Past the grace; then new ones.
    tokio::time::sleep(Duration::from_millis(3500)).await;
    d.cli(&[
        "run",
        "--network",
        "none",
        "--name",
        "exited-new",
        "tiny:1",
        "/exit",
        "0",
    ]);
    // An old image, now dangling, used only by a (new) stopped container.
    d.cli(&[
        "run",
        "--network",
        "none",
        "--name",
        "stopped-user",
        "tiny:used",
        "/exit",
        "0",
    ]);
    import("e", "tiny:used");
    let dangling_new = import("f", "tiny:fresh");
    import("g", "tiny:fresh");
    let (containers, images, volumes) = (
        d.lines(&["ps", "-a", "--format", "{{.Names}}"]),
        d.lines(&["images", "-a", "-q", "--no-trunc"]),
        d.lines(&["volume", "ls", "-q"]),
    );
    let backend = DockerBackend::connect(&d.socket()).await.unwrap();
    let rootdir = backend.root();
    assert!(rootdir.is_some(), "the engine names its data root");

    // A dry run says what would go and removes nothing.
    let dry = pass(&backend, &rules(), true, rootdir.as_deref())
        .await
        .unwrap();
    let short = |id: &str| id.chars().take(19).collect::<String>();
    let mut want = vec![
        "container exited-old".to_string(),
        "container exited-old-3".to_string(),
        format!("image {}", short(&dangling_old)),
        "volume vol-loose".to_string(),
    ];
    want.sort();
    assert_eq!(removed(&dry), want);
    assert_eq!(d.lines(&["ps", "-a", "--format", "{{.Names}}"]), containers);
    assert_eq!(d.lines(&["images", "-a", "-q", "--no-trunc"]), images);

    let done = pass(&backend, &rules(), false, rootdir.as_deref())
        .await
        .unwrap();
    assert!(done.failed.is_empty(), "{:?}", done.failed);
    assert_eq!(removed(&done), want);
    assert_eq!(
        d.lines(&["ps", "-a", "--format", "{{.Names}}"]),
        ["exited-new", "holder", "stopped-user"]
    );
    let left = d.lines(&["images", "-a", "-q", "--no-trunc"]);
    assert!(
        !left.contains(&dangling_old),
        "the old dangling image is gone"
    );
    for kept in [&tiny, &used_old, &dangling_new] {
        assert!(left.contains(kept), "{kept} should stay: {left:?}");
    }
    assert_eq!(left.len(), images.len() - 1);
    assert_eq!(d.lines(&["volume", "ls", "-q"]), ["vol-used"]);
    assert_eq!(volumes.len(), 2);
    // A second pass finds nothing more.
    let again = pass(&backend, &rules(), false, rootdir.as_deref())
        .await
        .unwrap();
    assert!(again.removed.is_empty(), "{:?}", removed(&again));
}

/// An OCI image layout of `fs` named `name`, as a tarball `ctr images
/// import` reads.
fn oci_archive(work: &Path, fs: &Path, name: &str) -> PathBuf {
    let tag = name.rsplit(':').next().unwrap();
    let layout = work.join(format!("oci-{tag}"));
    let blobs = layout.join("blobs/sha256");
    std::fs::create_dir_all(&blobs).unwrap();
    let put = |bytes: &[u8]| -> (String, usize) {
        let hex = hex::encode(sha2::Sha256::digest(bytes));
        std::fs::write(blobs.join(&hex), bytes).unwrap();
        (format!("sha256:{hex}"), bytes.len())
    };
    let layer_tar = work.join(format!("layer-{tag}.tar"));
    tar(fs, &layer_tar);
    let (layer, layer_size) = put(&std::fs::read(&layer_tar).unwrap());
    let arch = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        a => a,
    };
    let config = serde_json::json!({ "architecture": arch, "os": "linux",
        "config": { "Cmd": ["/exit"] }, "rootfs": { "type": "layers", "diff_ids": [layer] } });
    let (config, config_size) = put(config.to_string().as_bytes());
    let manifest = serde_json::json!({ "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": { "mediaType": "application/vnd.oci.image.config.v1+json", "digest": config, "size": config_size },
        "layers": [{ "mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": layer, "size": layer_size }] });
    let (manifest, manifest_size) = put(manifest.to_string().as_bytes());
    let index = serde_json::json!({ "schemaVersion": 2, "manifests": [{
        "mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": manifest, "size": manifest_size,
        "platform": { "architecture": arch, "os": "linux" },
        "annotations": { "io.containerd.image.name": name, "org.opencontainers.image.ref.name": tag } }] });
    std::fs::write(layout.join("index.json"), index.to_string()).unwrap();
    std::fs::write(
        layout.join("oci-layout"),
        r#"{"imageLayoutVersion":"1.0.0"}"#,
    )
    .unwrap();
    let out = work.join(format!("image-{tag}.tar"));
    tar(&layout, &out);
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn containerd_untracked_exited_containers_and_dangling_images() {
    let Some(d) = Daemon::start("containerd") else {
        return;
    };
    let work = tempfile::tempdir().unwrap();
    let import = |tag: &str, name: &str| {
        let t = oci_archive(work.path(), &rootfs(work.path(), tag), name);
        d.cli(&[
            "images",
            "import",
            "--snapshotter",
            "native",
            t.to_str().unwrap(),
        ]);
    };
    // A dangling image: only its digest names it once its tag is removed.
    let dangle = |tag: &str| {
        let name = format!("docker.io/library/tiny:{tag}");
        import(tag, &name);
        let digest = d
            .lines(&["images", "ls"])
            .iter()
            .find(|l| l.starts_with(&name))
            .and_then(|l| {
                l.split_whitespace()
                    .find(|w| w.starts_with("sha256:"))
                    .map(str::to_string)
            })
            .unwrap();
        d.cli(&[
            "images",
            "tag",
            &name,
            &format!("docker.io/library/tiny@{digest}"),
        ]);
        d.cli(&["images", "rm", &name]);
        digest
    };
    import("keep", "docker.io/library/tiny:1");
    let old_dangling = dangle("old");
    let used_dangling = dangle("used");
    let create = |id: &str, image: &str, labels: &[&str]| {
        let mut args = vec!["containers", "create", "--snapshotter", "native"];
        for l in labels {
            args.push("--label");
            args.push(l);
        }
        args.push(image);
        args.push(id);
        d.cli(&args);
    };
    let used_ref = format!("docker.io/library/tiny@{used_dangling}");
    // The kubelet's pod p1 still has its sandbox; pod p0's is gone.
    create(
        "sandbox-p1",
        "docker.io/library/tiny:1",
        &["io.cri-containerd.kind=sandbox", "io.kubernetes.pod.uid=p1"],
    );
    create(
        "app-p1",
        "docker.io/library/tiny:1",
        &[
            "io.cri-containerd.kind=container",
            "io.kubernetes.pod.uid=p1",
        ],
    );
    create(
        "app-p0",
        &used_ref,
        &[
            "io.cri-containerd.kind=container",
            "io.kubernetes.pod.uid=p0",
        ],
    );
    create("plain-old", "docker.io/library/tiny:1", &[]);
    tokio::time::sleep(Duration::from_millis(3500)).await;
    create("plain-new", "docker.io/library/tiny:1", &[]);
    let new_dangling = dangle("new");
    let snapshots_before = d.lines(&["snapshots", "--snapshotter", "native", "ls"]);
    assert!(
        snapshots_before.iter().any(|l| l.starts_with("app-p0")),
        "{snapshots_before:?}"
    );

    let backend =
        ContainerdBackend::connect(&d.socket(), Some(d.dir.join("root").to_str().unwrap()))
            .await
            .unwrap();
    let done = pass(&backend, &rules(), false, backend.root().as_deref())
        .await
        .unwrap();
    assert!(done.failed.is_empty(), "{:?}", done.failed);
    let mut want = vec![
        "container app-p0".to_string(),
        "container plain-old".to_string(),
        format!(
            "image {}",
            old_dangling.chars().take(19).collect::<String>()
        ),
    ];
    want.sort();
    // app-p0's CRI name is its container-name label, absent here: its id.
    assert_eq!(removed(&done), want);
    assert_eq!(
        d.lines(&["containers", "ls", "-q"]),
        ["app-p1", "plain-new", "sandbox-p1"]
    );
    let images = d.cli(&["images", "ls"]);
    assert!(!images.contains(&old_dangling), "{images}");
    // Used by a container this pass still saw: next pass.
    assert!(images.contains(&used_dangling), "{images}");
    assert!(images.contains(&new_dangling), "{images}");
    assert!(images.contains("docker.io/library/tiny:1"), "{images}");
    let snapshots = d.lines(&["snapshots", "--snapshotter", "native", "ls"]);
    assert!(
        !snapshots
            .iter()
            .any(|l| l.starts_with("app-p0") || l.starts_with("plain-old")),
        "{snapshots:?}"
    );
    // The next pass takes the image app-p0 used.
    let again = pass(&backend, &rules(), false, backend.root().as_deref())
        .await
        .unwrap();
    assert_eq!(
        removed(&again),
        [format!(
            "image {}",
            used_dangling.chars().take(19).collect::<String>()
        )]
    );
}

#[test]
fn bad_flags_exit_2_naming_the_flag() {
    let out = Command::new(env!("CARGO_BIN_EXE_clusterctl"))
        .args(["node-cleanup", "--once", "--disk-threshold", "150"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("--disk-threshold <PERCENT>"), "{err}");
    let out = Command::new(env!("CARGO_BIN_EXE_clusterctl"))
        .args(["node-cleanup", "--once", "--container-grace", "soon"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("--container-grace"), "{err}");
}

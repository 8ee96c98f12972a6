//! The node bootstrap script under a harness: each rendered script (dev
//! and ha; the first control plane, a joining control plane, a worker)
//! runs under bash with stub commands standing in for `aws`, `kubeadm`,
//! `kubectl`, `etcdctl`, `apt-get`, `systemctl`, `curl`, `snap` and the
//! host tools. The stubs record their arguments and play back scripted
//! answers the way the real tools give them (the AWS CLI's error text and
//! exit code 254 for a service error, kubeadm's exit 1); every file the
//! script writes lands under a temporary root (`CLUSTERCTL_ROOT`). Real
//! `openssl` computes the CA hash and mints the etcd client certificate.

use std::path::{Path, PathBuf};
use std::process::Command;

use clusterctl::model::Props;
use clusterctl::spec::Spec;

use crate::support::{root, tool};

/// The bootstrap token every scenario uses; it must never show up in an
/// argv, in stdout or stderr, or in a file left behind.
const TOKEN: &str = "abcdef.0123456789abcdef";

/// One stub for every command: it records its name and arguments, then
/// answers from the state directory (`STUB_STATE`, the state store's
/// objects by key) and the control directory (`STUB_CTL`).
const STUB: &str = r#"#!/bin/bash
set -u
name="$(basename "$0")"
{ printf '%s' "${name}"; printf ' %q' "$@"; printf '\n'; } >>"${STUB_LOG}"
ctl="${STUB_CTL}"
state="${STUB_STATE}"
# Counts down a scripted failure; succeeds (0) while failures remain.
fail_once() {
  local f="${ctl}/$1" n
  [ -f "$f" ] || return 1
  n="$(cat "$f")"
  [ "$n" -gt 0 ] || return 1
  echo $((n - 1)) >"$f"
}
key_of() { echo "$1" | sed -e 's#^s3://[^/]*/##'; }
arg_after() {
  local want="$1"
  shift
  while [ $# -gt 0 ]; do
    if [ "$1" = "$want" ]; then echo "$2"; return; fi
    shift
  done
}
case "${name}" in
  aws)
    if [ "$1" = s3 ] || [ "$1" = s3api ]; then
      owner="$(arg_after --expected-bucket-owner "$@")"
      if [ "${owner}" != 123456789012 ]; then
        echo "An error occurred (AccessDenied) when calling the $2 operation: Access Denied (expected bucket owner '${owner}')" >&2
        exit 254
      fi
    fi
    case "$1 $2" in
      "s3 cp")
        src="${@: -2:1}"; dst="${@: -1}"
        if [[ "${src}" == s3://* ]]; then
          k="$(key_of "${src}")"
          [ -f "${state}/${k}" ] || { echo "fatal error: An error occurred (404) when calling the HeadObject operation: Key \"${k}\" does not exist" >&2; exit 1; }
          cp "${state}/${k}" "${dst}"
        else
          k="$(key_of "${dst}")"; mkdir -p "$(dirname "${state}/${k}")"; cp "${src}" "${state}/${k}"
        fi ;;
      "s3api put-object")
        k="$(arg_after --key "$@")"; body="$(arg_after --body "$@")"
        if fail_once put-failures; then
          echo "An error occurred (InternalError) when calling the PutObject operation (reached max retries: 4): We encountered an internal error. Please try again." >&2
          exit 254
        fi
        cond_none="$(arg_after --if-none-match "$@")"; cond_match="$(arg_after --if-match "$@")"
        etag="\"$(md5sum <"${state}/${k}" 2>/dev/null | cut -d' ' -f1)\""
        if { [ -n "${cond_none}" ] && [ -f "${state}/${k}" ]; } || { [ -n "${cond_match}" ] && [ "${cond_match}" != "${etag}" ]; }; then
          echo "An error occurred (PreconditionFailed) when calling the PutObject operation: At least one of the pre-conditions you specified did not hold" >&2
          exit 254
        fi
        mkdir -p "$(dirname "${state}/${k}")"; cp "${body}" "${state}/${k}"
        echo '{"ETag": "\"stub\""}' ;;
      "s3api head-object")
        k="$(arg_after --key "$@")"
        echo "\"$(md5sum <"${state}/${k}" | cut -d' ' -f1)\"" ;;
      "s3api get-object")
        k="$(arg_after --key "$@")"; cp "${state}/${k}" "${@: -1}"; echo '{}' ;;
      "ec2 describe-instances")
        id="$(arg_after --instance-ids "$@")"
        if [ -n "${id}" ]; then
          cat "${ctl}/instances/${id}" 2>/dev/null || true
        else
          cat "${ctl}/live-ips"
        fi ;;
      *) echo "stub aws: unexpected $*" >&2; exit 2 ;;
    esac ;;
  kubeadm)
    case "$1" in
      init|join)
        config="$(arg_after --config "$@")"
        if [ -f "${STUB_ROOT}/etc/kubernetes/pki/ca.crt" ]; then ca=present; else ca=absent; fi
        if grep -q "${STUB_TOKEN}" "${config}"; then tok=in-config; else tok=missing; fi
        pid="$(grep -A1 'name: provider-id' "${config}" | sed -n 's/.*value: "\(.*\)"/\1/p')"
        # The kubelet's (nodeRegistration comes first; an init config also
        # sets kube-controller-manager's).
        cloud="$(grep -A1 'name: cloud-provider' "${config}" | sed -n 's/.*value: \(.*\)/\1/p' | head -n 1)"
        echo "kubeadm-$1 pki-ca=${ca} token=${tok} config=${config} cloud-provider=${cloud} provider-id=${pid}" >>"${STUB_LOG}.events"
        if fail_once kubeadm-failures; then echo "error execution phase preflight: stub failure" >&2; exit 1; fi ;;
      reset) ;;
    esac ;;
  etcdctl)
    for a in "$@"; do
      case "$a" in
        list) cat "${ctl}/etcd-members" ;;
        remove) echo "etcd-remove ${@: -1}" >>"${STUB_LOG}.events" ;;
      esac
    done ;;
  curl)
    case "$*" in
      *api/token*) echo "imds-session" ;;
      *meta-data/instance-id*) cat "${ctl}/instance-id" ;;
      *meta-data/placement/availability-zone*) echo eu-west-1b ;;
      *dynamic/instance-identity/document*)
        printf '{\n  "accountId" : "123456789012",\n  "region" : "eu-west-1"\n}\n' ;;
      *meta-data/local-ipv4*) cat "${ctl}/private-ip" ;;
      *readyz*) [ -f "${ctl}/api-answers" ] || exit 7 ;;
      *) out="$(arg_after -o "$@")"; [ -z "${out}" ] || echo stub >"${out}" ;;
    esac ;;
  containerd) echo "SystemdCgroup = false" ;;
  gpg) out="$(arg_after -o "$@")"; : >"${out}" ;;
  *) ;;
esac
exit 0
"#;

const STUBBED: &[&str] = &[
    "aws",
    "kubeadm",
    "kubectl",
    "etcdctl",
    "apt-get",
    "apt-mark",
    "systemctl",
    "curl",
    "snap",
    "modprobe",
    "sysctl",
    "containerd",
    "gpg",
    "sleep",
];

/// A rendered script of an example, by instance group.
fn script(example: &str, group: &str) -> String {
    let spec = Spec::load(&root().join(format!("examples/{example}.yaml"))).unwrap();
    let model = clusterctl::model::build(&spec).unwrap();
    model
        .resources
        .iter()
        .find_map(|r| match &r.props {
            Props::LaunchTemplate { user_data, .. }
                if r.name == format!("{group}.{}", model.cluster_name) =>
            {
                Some(user_data.clone())
            }
            _ => None,
        })
        .unwrap_or_else(|| panic!("no launch template for {group} in {example}"))
}

/// One run's sandbox: a root, stubs, a state store and the controls.
struct Harness {
    _dir: tempfile::TempDir,
    root: PathBuf,
    bin: PathBuf,
    state: PathBuf,
    ctl: PathBuf,
    log: PathBuf,
    prefix: String,
}

struct Run {
    ok: bool,
    output: String,
    calls: Vec<String>,
    events: Vec<String>,
}

fn openssl_ca(dir: &Path, name: &str, cn: &str) {
    std::fs::create_dir_all(dir.join(name).parent().unwrap()).unwrap();
    let out = Command::new("openssl")
        .args([
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
        ])
        .arg("-subj")
        .arg(format!("/CN={cn}"))
        .arg("-keyout")
        .arg(dir.join(format!("{name}.key")))
        .arg("-out")
        .arg(dir.join(format!("{name}.crt")))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

impl Harness {
    fn new(cluster: &str) -> Harness {
        let dir = tempfile::tempdir().unwrap();
        let p = |n: &str| dir.path().join(n);
        let (root, bin, state, ctl) = (p("root"), p("bin"), p("state"), p("ctl"));
        for d in [&root, &bin, &ctl, &ctl.join("instances")] {
            std::fs::create_dir_all(d).unwrap();
        }
        let prefix = format!("clusters/{cluster}");
        let store = state.join(&prefix);
        let pki = store.join("pki");
        openssl_ca(&pki, "ca", "kubernetes");
        openssl_ca(&pki, "front-proxy-ca", "front-proxy-ca");
        openssl_ca(&pki, "etcd/ca", "etcd-ca");
        std::fs::copy(pki.join("ca.key"), pki.join("sa.key")).unwrap();
        std::fs::write(pki.join("sa.pub"), "stub public key\n").unwrap();
        std::fs::create_dir_all(store.join("secrets")).unwrap();
        std::fs::write(store.join("secrets/bootstrap-token"), TOKEN).unwrap();
        let stub = bin.join("stub");
        std::fs::write(&stub, STUB).unwrap();
        for name in STUBBED {
            std::fs::copy(&stub, bin.join(name)).unwrap();
            let mut perm = std::fs::metadata(bin.join(name)).unwrap().permissions();
            std::os::unix::fs::PermissionsExt::set_mode(&mut perm, 0o755);
            std::fs::set_permissions(bin.join(name), perm).unwrap();
        }
        let h = Harness {
            log: p("calls.log"),
            _dir: dir,
            root,
            bin,
            state,
            ctl,
            prefix,
        };
        h.control("instance-id", "i-self");
        h.control("private-ip", "10.0.1.7");
        h.control("live-ips", "10.0.1.5\t10.0.1.6\t10.0.1.7");
        h.control("instances/i-self", "running");
        h
    }

    fn control(&self, name: &str, value: &str) {
        std::fs::write(self.ctl.join(name), format!("{value}\n")).unwrap();
    }

    fn claim(&self) -> Option<String> {
        std::fs::read_to_string(self.state.join(&self.prefix).join("cluster-initialized")).ok()
    }

    fn set_claim(&self, instance: &str, age_secs: u64, state: &str) {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs();
        std::fs::write(
            self.state.join(&self.prefix).join("cluster-initialized"),
            format!(
                "{{\"instance\":\"{instance}\",\"claimed\":{},\"state\":\"{state}\"}}\n",
                now - age_secs
            ),
        )
        .unwrap();
    }

    fn run(&self, script: &str) -> Run {
        let path = self.root.join("nodeup.sh");
        std::fs::write(&path, script).unwrap();
        let _ = std::fs::remove_file(&self.log);
        let events = PathBuf::from(format!("{}.events", self.log.display()));
        let _ = std::fs::remove_file(&events);
        let out = Command::new("bash")
            .arg(&path)
            .env_clear()
            .env("PATH", format!("{}:/usr/bin:/bin", self.bin.display()))
            .env("CLUSTERCTL_ROOT", &self.root)
            .env("CLUSTERCTL_RETRY_DELAY", "0")
            .env("STUB_LOG", &self.log)
            .env("STUB_CTL", &self.ctl)
            .env("STUB_STATE", &self.state)
            .env("STUB_ROOT", &self.root)
            .env("STUB_TOKEN", TOKEN)
            .output()
            .unwrap();
        let read = |p: &Path| {
            std::fs::read_to_string(p)
                .unwrap_or_default()
                .lines()
                .map(str::to_string)
                .collect::<Vec<_>>()
        };
        Run {
            ok: out.status.success(),
            output: format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ),
            calls: read(&self.log),
            events: read(&events),
        }
    }

    /// No file left under the root holds the token.
    fn token_left_behind(&self) -> Vec<PathBuf> {
        let mut found = vec![];
        let mut stack = vec![self.root.clone()];
        while let Some(d) = stack.pop() {
            for e in std::fs::read_dir(&d).unwrap().flatten() {
                let p = e.path();
                if p.is_dir() {
                    stack.push(p);
                } else if std::fs::read_to_string(&p).is_ok_and(|t| t.contains(TOKEN)) {
                    found.push(p);
                }
            }
        }
        found
    }
}

impl Run {
    fn calls_of(&self, prefix: &str) -> Vec<&String> {
        self.calls
            .iter()
            .filter(|c| c.starts_with(prefix))
            .collect()
    }

    fn assert_no_token_exposed(&self) {
        assert!(
            !self.output.contains(TOKEN),
            "the token is in the output:\n{}",
            self.output
        );
        for c in &self.calls {
            assert!(!c.contains(TOKEN), "the token is in an argv: {c}");
        }
    }
}

fn needs_tools() -> bool {
    tool("bash").is_some() && tool("openssl").is_some()
}

#[test]
fn a_worker_joins_without_the_ca_file_and_keeps_the_token_out_of_sight() {
    if !needs_tools() {
        return;
    }
    for (example, group, cluster) in [
        ("dev", "nodes", "dev.example.com"),
        ("ha", "nodes", "ha.example.com"),
    ] {
        let h = Harness::new(cluster);
        let run = h.run(&script(example, group));
        assert!(run.ok, "{example}: {}", run.output);
        assert_eq!(run.events.len(), 1, "{example}: one join: {:?}", run.events);
        assert!(
            run.events[0].starts_with("kubeadm-join pki-ca=absent token=in-config"),
            "{example}: {:?}",
            run.events
        );
        // The token travels in the config file, never on the command line.
        assert_eq!(
            run.calls_of("kubeadm join --config").len(),
            1,
            "{:?}",
            run.calls
        );
        run.assert_no_token_exposed();
        assert!(
            h.token_left_behind().is_empty(),
            "{:?}",
            h.token_left_behind()
        );
        assert!(!h.root.join("etc/kubernetes/pki/ca.crt").exists());
        // The kubelet runs with the external cloud provider (the AWS cloud
        // controller manager) and names its instance (zone and id from IMDS).
        assert!(
            run.events[0].ends_with("cloud-provider=external provider-id=aws:///eu-west-1b/i-self"),
            "{example}: {:?}",
            run.events
        );
    }
}

#[test]
fn claim_init_retries_a_500_and_only_412_means_lost() {
    if !needs_tools() {
        return;
    }
    let s = script("ha", "control-plane-eu-west-1a");
    // Two internal errors, then the claim: this instance initialises.
    let h = Harness::new("ha.example.com");
    h.control("put-failures", "2");
    let run = h.run(&s);
    assert!(run.ok, "{}", run.output);
    let claims: Vec<_> = run
        .calls_of("aws s3api put-object")
        .into_iter()
        .filter(|c| c.contains("--if-none-match"))
        .collect();
    assert_eq!(claims.len(), 3, "{:?}", run.calls);
    assert!(
        run.events.iter().any(|e| e.starts_with("kubeadm-init")),
        "{:?}",
        run.events
    );
    assert!(
        run.calls
            .iter()
            .any(|c| c.starts_with("kubeadm init") && c.contains("--skip-token-print")),
        "{:?}",
        run.calls
    );
    // The claim now says who holds it, and that init completed.
    let claim = h.claim().unwrap();
    assert!(
        claim.contains("\"instance\":\"i-self\"") && claim.contains("\"state\":\"initialized\""),
        "{claim}"
    );
    run.assert_no_token_exposed();

    // A claim held by a live, initialized control plane: one 412, no retry, join.
    let h = Harness::new("ha.example.com");
    h.set_claim("i-first", 30, "initialized");
    h.control("instances/i-first", "running");
    h.control("etcd-members", "");
    let run = h.run(&s);
    assert!(run.ok, "{}", run.output);
    assert_eq!(
        run.calls_of("aws s3api put-object").len(),
        1,
        "{:?}",
        run.calls
    );
    assert!(
        run.events
            .iter()
            .any(|e| e.starts_with("kubeadm-join pki-ca=present token=in-config")),
        "{:?}",
        run.events
    );
    assert!(!run.events.iter().any(|e| e.starts_with("kubeadm-init")));
    run.assert_no_token_exposed();
}

#[test]
fn a_stale_claim_is_taken_over_and_a_fresh_one_is_not() {
    if !needs_tools() {
        return;
    }
    let s = script("ha", "control-plane-eu-west-1b");
    // The claimant's instance is gone and init never completed.
    let h = Harness::new("ha.example.com");
    h.set_claim("i-dead", 60, "initializing");
    h.control("instances/i-dead", "terminated");
    let run = h.run(&s);
    assert!(run.ok, "{}", run.output);
    assert!(
        run.calls_of("aws s3api put-object")
            .iter()
            .any(|c| c.contains("--if-match")),
        "{:?}",
        run.calls
    );
    assert!(
        run.events.iter().any(|e| e.starts_with("kubeadm-init")),
        "{:?}",
        run.events
    );
    assert!(h.claim().unwrap().contains("\"instance\":\"i-self\""));
    // Alive but stuck for longer than the timeout, with no API: taken over too.
    let h = Harness::new("ha.example.com");
    h.set_claim("i-stuck", 3600, "initializing");
    h.control("instances/i-stuck", "running");
    let run = h.run(&s);
    assert!(
        run.events.iter().any(|e| e.starts_with("kubeadm-init")),
        "{:?}",
        run.events
    );
    // Alive and recent: it is initialising now, so this one joins.
    let h = Harness::new("ha.example.com");
    h.set_claim("i-busy", 60, "initializing");
    h.control("instances/i-busy", "running");
    h.control("etcd-members", "");
    let run = h.run(&s);
    assert!(run.ok, "{}", run.output);
    assert!(
        !run.events.iter().any(|e| e.starts_with("kubeadm-init")),
        "{:?}",
        run.events
    );
    assert!(h.claim().unwrap().contains("i-busy"));
}

#[test]
fn a_joining_control_plane_removes_the_dead_etcd_member_first() {
    if !needs_tools() {
        return;
    }
    for (example, group, cluster) in [
        ("ha", "control-plane-eu-west-1c", "ha.example.com"),
        ("dev", "control-plane-us-east-1a", "dev.example.com"),
    ] {
        let h = Harness::new(cluster);
        h.set_claim("i-first", 600, "initialized");
        h.control("instances/i-first", "running");
        // Live control planes: .5 and .6 (and this one, .7); .9 is gone.
        h.control(
            "etcd-members",
            "8e9e05c52164694d, started, ip-10-0-1-5, https://10.0.1.5:2380, https://10.0.1.5:2379, false\n\
             91bc3c398fb3c146, started, ip-10-0-1-6, https://10.0.1.6:2380, https://10.0.1.6:2379, false\n\
             fd422379fda50e48, started, ip-10-0-1-9, https://10.0.1.9:2380, https://10.0.1.9:2379, false",
        );
        let run = h.run(&script(example, group));
        assert!(run.ok, "{example}: {}", run.output);
        assert_eq!(
            run.events,
            [
                "etcd-remove fd422379fda50e48".to_string(),
                run.events[1].clone()
            ],
            "{example}"
        );
        assert!(
            run.events[1].starts_with("kubeadm-join pki-ca=present"),
            "{:?}",
            run.events
        );
        // etcdctl spoke to a live member with a client certificate of the etcd CA.
        let etcd = run.calls_of("etcdctl");
        assert!(
            etcd.iter().all(|c| c.contains("https://10.0.1.5:2379")),
            "{etcd:?}"
        );
        assert!(
            etcd.iter().all(|c| c.contains("etcd-client.crt")),
            "{etcd:?}"
        );
        run.assert_no_token_exposed();
        // The etcd backup timer is installed on every control plane.
        assert!(
            h.root
                .join("etc/systemd/system/clusterctl-etcd-backup.timer")
                .exists()
        );
        assert!(
            h.token_left_behind().is_empty(),
            "{:?}",
            h.token_left_behind()
        );
    }
}

#[test]
fn token_files_are_gone_after_kubeadm_fails() {
    if !needs_tools() {
        return;
    }
    for (example, group, cluster) in [
        ("dev", "nodes", "dev.example.com"),
        ("dev", "control-plane-us-east-1a", "dev.example.com"),
    ] {
        let h = Harness::new(cluster);
        h.control("kubeadm-failures", "3");
        let run = h.run(&script(example, group));
        assert!(
            !run.ok,
            "{example}/{group}: a failed kubeadm must fail the script"
        );
        // kubeadm was tried three times, with a reset between tries.
        let tries = run.events.len();
        assert_eq!(tries, 3, "{:?}", run.events);
        assert!(run.events.iter().all(|e| e.contains("token=in-config")));
        assert_eq!(run.calls_of("kubeadm reset").len(), 3);
        assert!(
            h.token_left_behind().is_empty(),
            "{:?}",
            h.token_left_behind()
        );
        assert_eq!(std::fs::read_dir(h.root.join("tmp")).unwrap().count(), 0);
        run.assert_no_token_exposed();
    }
}

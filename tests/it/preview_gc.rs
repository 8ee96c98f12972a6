//! `preview gc` at scale and safely: 1,000 previews, 300 of them expired,
//! one of those with a DNS deletion that fails (injected by the proxy), and
//! an unlabeled namespace with an expired annotation. The first run removes
//! the 299 others and reports the failing one; once the fault is gone a
//! second run finishes it; nothing else is touched. With
//! CLUSTERCTL_BENCH=1 it prints the wall time and API calls of the run.

use std::collections::BTreeSet;
use std::time::Instant;

use chrono::Utc;
use clusterctl::cloud::dns::{Change, Dns, RecordSet};
use clusterctl::preview::gc;
use clusterctl::preview::ledger::{self, Ledger};
use clusterctl::preview::records::{self, Target};
use futures::StreamExt as _;
use k8s_openapi::api::core::v1::Namespace;
use kube::api::{Api, PostParams};
use serde_json::json;

use crate::kube_env::KubeEnv;
use crate::preview::{REGION, ZONE, account, shared};

const LIVE: usize = 700;
const EXPIRED: usize = 300;

fn ledger_for(i: usize, run: &str, expired: bool) -> Ledger {
    let now = Utc::now();
    let branch = format!("b{i}");
    let repo = format!("gc-{run}");
    let names = clusterctl::preview::naming::names(&repo, &branch, "web").unwrap();
    let host = format!("{}.{ZONE}", names.host_label);
    let rec = records::wanted(
        "web",
        ZONE,
        &host,
        &Target::Cname(format!("lb.{REGION}.elb.amazonaws.com")),
        60,
        &names.namespace,
    );
    let expires_at = if expired {
        now - chrono::Duration::hours(1)
    } else {
        now + chrono::Duration::hours(24)
    };
    Ledger {
        namespace: names.namespace,
        repo,
        branch,
        owner: "gc@example.com".into(),
        created: now - chrono::Duration::hours(80),
        last_deployed: now - chrono::Duration::hours(80),
        expires_at,
        records: vec![rec],
    }
}

fn namespace_of(l: &Ledger) -> Namespace {
    serde_json::from_value(json!({
        "metadata": {
            "name": l.namespace,
            "labels": { ledger::MANAGED_BY: ledger::MANAGED_BY_VALUE, ledger::REPO_LABEL: ledger::repo_label(&l.repo) },
            "annotations": {
                ledger::REPO: l.repo, ledger::BRANCH: l.branch,
                ledger::EXPIRES_AT: l.expires_at.to_rfc3339(),
                ledger::LAST_DEPLOYED: l.last_deployed.to_rfc3339(),
                ledger::LEDGER: l.to_annotation(),
            },
        },
    }))
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gc_of_a_thousand_previews_finishes_every_expired_one_and_touches_nothing_else() {
    let Some(moto) = crate::moto::Moto::start() else {
        return;
    };
    let (r53, zone, s3) = account(&moto.endpoint).await;
    let env = KubeEnv::new("preview-gc").await;
    let run = env.ns[env.ns.len() - 6..].to_string();
    let proxy = crate::proxy::Proxy::start(&moto.endpoint, Default::default());
    let mut s = shared(&env, &proxy.endpoint, s3.clone(), &format!("gc-{run}")).await;
    // gc calls as the preview-gc component (checked against its RBAC).
    s.client = env.component_client("preview-gc").await;
    let setup = shared(&env, &moto.endpoint, s3, &format!("gc-{run}")).await;

    // 1,000 previews: namespaces, records and ledgers (the last expired
    // one is the one whose DNS deletion will fail).
    let all: Vec<(Ledger, bool)> = (0..LIVE + EXPIRED)
        .map(|i| {
            let expired = i >= LIVE;
            (ledger_for(i, &run, expired), expired)
        })
        .collect();
    let faulty = all.last().unwrap().0.clone();
    let nss = Api::<Namespace>::all(env.client.clone());
    futures::stream::iter(all.iter())
        .map(|(l, _)| {
            let nss = nss.clone();
            let ledgers = setup.ledgers.clone();
            async move {
                nss.create(&PostParams::default(), &namespace_of(l))
                    .await
                    .unwrap();
                ledgers.put(l).await.unwrap();
            }
        })
        .buffer_unordered(16)
        .collect::<Vec<_>>()
        .await;
    let changes: Vec<Change> = all
        .iter()
        .flat_map(|(l, _)| {
            l.records.iter().flat_map(|r| {
                [
                    Change::Upsert(r.record.clone()),
                    Change::Upsert(r.owner.clone()),
                ]
            })
        })
        .collect();
    for chunk in changes.chunks(400) {
        setup.dns.change(&zone, chunk).await.unwrap();
    }
    // A record that is no preview's, and an unlabeled namespace whose
    // annotation says it expired.
    let bystander = RecordSet {
        name: format!("www-{run}.{ZONE}"),
        kind: "A".into(),
        ttl: Some(60),
        values: vec!["192.0.2.10".into()],
        alias: None,
    };
    r53.change(&zone, &[Change::Upsert(bystander.clone())])
        .await
        .unwrap();
    let unlabeled = format!("not-a-preview-{run}");
    let stray: Namespace = serde_json::from_value(json!({ "metadata": { "name": unlabeled,
        "annotations": { ledger::EXPIRES_AT: (Utc::now() - chrono::Duration::days(3)).to_rfc3339() } } }))
    .unwrap();
    nss.create(&PostParams::default(), &stray).await.unwrap();
    let records_before = r53.records(&zone).await.unwrap();

    // Run 1, with the fault.
    let host = faulty.records[0].record.name.clone();
    proxy.fail_dns_changes_naming(Some(&host));
    let t0 = Instant::now();
    let report = gc::run(
        &s,
        Utc::now(),
        std::time::Duration::from_secs(72 * 3600),
        false,
    )
    .await
    .unwrap();
    let wall = t0.elapsed();
    if std::env::var_os("CLUSTERCTL_BENCH").is_some() {
        println!(
            "preview gc, {} previews ({} expired): {:.2} s wall, {} Kubernetes calls, {} Route53 calls ({} namespaces and {} records deleted)",
            LIVE + EXPIRED,
            EXPIRED,
            wall.as_secs_f64(),
            report.kube_calls,
            report.dns_calls,
            report.namespaces_deleted,
            report.records_deleted
        );
    }
    // On a real cluster other previews may exist: count this run's only.
    let ours: BTreeSet<String> = all
        .iter()
        .filter(|(_, e)| *e)
        .map(|(l, _)| l.namespace.clone())
        .collect();
    let planned: BTreeSet<String> = report
        .plan
        .delete
        .iter()
        .filter(|n| ours.contains(*n))
        .cloned()
        .collect();
    assert_eq!(planned, ours);
    let failed: Vec<_> = report
        .failed
        .iter()
        .filter(|f| ours.contains(&f.namespace))
        .collect();
    assert_eq!(failed.len(), 1, "{:?}", report.failed);
    assert_eq!(failed[0].namespace, faulty.namespace);
    assert!(
        failed[0].error.contains("injected fault"),
        "{}",
        failed[0].error
    );
    assert_eq!(
        report.finished.iter().filter(|n| ours.contains(*n)).count(),
        EXPIRED - 1
    );
    assert!(report.records_deleted >= 2 * (EXPIRED - 1));
    assert!(
        nss.get_opt(&unlabeled).await.unwrap().is_some(),
        "the unlabeled namespace stays"
    );
    assert!(
        s.ledgers.get(&faulty.namespace).await.unwrap().is_some(),
        "the failed one keeps its ledger"
    );

    // Run 2, without the fault: the failed one is finished.
    proxy.fail_dns_changes_naming(None);
    let report = gc::run(
        &s,
        Utc::now(),
        std::time::Duration::from_secs(72 * 3600),
        false,
    )
    .await
    .unwrap();
    assert!(
        !report.failed.iter().any(|f| ours.contains(&f.namespace)),
        "{:?}",
        report.failed
    );
    assert!(
        report.finished.contains(&faulty.namespace),
        "{:?}",
        report.finished
    );
    assert!(report.plan.kept >= LIVE);

    // Nothing of an expired preview is left; nothing else was touched.
    let after = r53.records(&zone).await.unwrap();
    let expired_names: BTreeSet<String> = all
        .iter()
        .filter(|(_, e)| *e)
        .flat_map(|(l, _)| {
            l.records
                .iter()
                .flat_map(|r| [r.record.name.clone(), r.owner.name.clone()])
        })
        .collect();
    assert!(!after.iter().any(|r| expired_names.contains(&r.name)));
    let untouched: Vec<&RecordSet> = records_before
        .iter()
        .filter(|r| !expired_names.contains(&r.name))
        .collect();
    for r in &untouched {
        assert!(after.contains(r), "{r:?} was touched");
    }
    assert_eq!(after.len(), untouched.len());
    assert!(after.contains(&bystander));
    let stored: BTreeSet<String> = s.ledgers.namespaces().await.unwrap().into_iter().collect();
    for (l, expired) in &all {
        assert_eq!(stored.contains(&l.namespace), !expired, "{}", l.namespace);
        let ns = nss.get_opt(&l.namespace).await.unwrap();
        if *expired {
            assert!(
                ns.is_none_or(|n| n.metadata.deletion_timestamp.is_some()),
                "{}",
                l.namespace
            );
        } else {
            assert!(
                ns.is_some_and(|n| n.metadata.deletion_timestamp.is_none()),
                "{}",
                l.namespace
            );
        }
    }
    assert!(nss.get_opt(&unlabeled).await.unwrap().is_some());

    // Clean up what the test made.
    for (l, expired) in &all {
        if !expired {
            let _ = nss.delete(&l.namespace, &Default::default()).await;
        }
    }
    let _ = nss.delete(&unlabeled, &Default::default()).await;
    env.cleanup().await;
}

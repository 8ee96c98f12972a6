//! Fault injection: a proxy in front of moto_server answers one request in
//! five with a throttling error (in each service's own error format); apply
//! still converges, and the retries are counted.

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};

use clusterctl::apply::{Quiet, apply};
use clusterctl::cloud::aws::AwsCloud;
use clusterctl::cloud::{Clients, Cloud, IdMap};
use clusterctl::plan::diff;
use clusterctl::spec::Spec;

use crate::moto::Moto;
use crate::support::root;

/// The throttling answer for a request, in its protocol's error shape.
fn throttle(path: &str, body: &[u8]) -> Response<Full<Bytes>> {
    let text = String::from_utf8_lossy(body);
    let (status, xml) = if text.contains("Version=2016-11-15") {
        (
            400,
            "<Response><Errors><Error><Code>RequestLimitExceeded</Code><Message>Request limit exceeded.</Message></Error></Errors><RequestID>fault</RequestID></Response>",
        )
    } else if text.contains("Action=") || path.starts_with("/2013-04-01/") {
        // awsQuery services (IAM, Auto Scaling, ELB) and Route53
        (
            400,
            "<ErrorResponse><Error><Type>Sender</Type><Code>Throttling</Code><Message>Rate exceeded</Message></Error><RequestId>fault</RequestId></ErrorResponse>",
        )
    } else {
        (
            503,
            "<Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message></Error>",
        )
    };
    Response::builder()
        .status(status)
        .header("content-type", "text/xml")
        .body(Full::new(Bytes::from(xml)))
        .unwrap()
}

/// Starts the proxy; returns its endpoint and the count of injected faults.
async fn fault_proxy(upstream: String, every: u64) -> (String, Arc<AtomicU64>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let endpoint = format!("http://{}", listener.local_addr().unwrap());
    let seen = Arc::new(AtomicU64::new(0));
    let injected = Arc::new(AtomicU64::new(0));
    let client: Client<_, Full<Bytes>> = Client::builder(TokioExecutor::new()).build_http();
    let inj = injected.clone();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let (client, seen, inj, upstream) =
                (client.clone(), seen.clone(), inj.clone(), upstream.clone());
            tokio::spawn(async move {
                let svc = service_fn(move |req: Request<hyper::body::Incoming>| {
                    let (client, seen, inj, upstream) =
                        (client.clone(), seen.clone(), inj.clone(), upstream.clone());
                    async move {
                        let (parts, body) = req.into_parts();
                        let body = body
                            .collect()
                            .await
                            .map(|b| b.to_bytes())
                            .unwrap_or_default();
                        let n = seen.fetch_add(1, Ordering::Relaxed);
                        if n % every == every - 1 {
                            inj.fetch_add(1, Ordering::Relaxed);
                            return Ok::<_, Infallible>(throttle(parts.uri.path(), &body));
                        }
                        let uri = format!(
                            "{upstream}{}",
                            parts
                                .uri
                                .path_and_query()
                                .map(|p| p.as_str())
                                .unwrap_or("/")
                        );
                        let mut fwd = Request::builder().method(parts.method).uri(uri);
                        for (k, v) in &parts.headers {
                            fwd = fwd.header(k, v);
                        }
                        let resp = client
                            .request(fwd.body(Full::new(body)).unwrap())
                            .await
                            .unwrap();
                        let (rp, rb) = resp.into_parts();
                        let rb = rb.collect().await.map(|b| b.to_bytes()).unwrap_or_default();
                        Ok(Response::from_parts(rp, Full::new(rb)))
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    (endpoint, injected)
}

#[tokio::test]
async fn apply_converges_through_20_percent_throttling() {
    let Some(moto) = Moto::start() else { return };
    let direct = Clients::from_sdk(&moto.sdk_config("eu-west-1").await, true);
    direct
        .route53
        .create_hosted_zone()
        .name("example.com")
        .caller_reference("faults")
        .send()
        .await
        .unwrap();
    moto.bucket("eu-west-1", "example-clusterctl-state").await;
    let (endpoint, injected) = fault_proxy(moto.endpoint.clone(), 5).await;
    let config = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new("eu-west-1"))
        .endpoint_url(&endpoint)
        .credentials_provider(aws_sdk_s3::config::Credentials::new(
            "test", "test", None, None, "moto",
        ))
        .retry_config(
            aws_config::retry::RetryConfig::standard()
                .with_max_attempts(clusterctl::cloud::MAX_ATTEMPTS)
                .with_initial_backoff(std::time::Duration::from_millis(20)),
        )
        .load()
        .await;
    let clients = Clients::from_sdk(&config, true);
    let cloud = Arc::new(AwsCloud::new(
        &clients,
        "ha.example.com",
        "example-clusterctl-state",
        "clusters/ha.example.com",
    ));
    let m =
        clusterctl::model::build(&Spec::load(&root().join("examples/ha.yaml")).unwrap()).unwrap();
    let actual = cloud.discover(&m).await.unwrap();
    let ids = IdMap::default();
    let plan = diff(&m, &actual, 0);
    apply(cloud.clone(), &m, &plan, &ids, 10, Arc::new(Quiet))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let after = diff(&m, &cloud.discover(&m).await.unwrap(), 0);
    assert!(after.is_empty(), "{}", after.render());
    let (operations, retries) = cloud.retries();
    let faults = injected.load(Ordering::Relaxed);
    eprintln!(
        "fault injection: {operations} operations, {retries} retries, {faults} throttling errors injected"
    );
    assert!(
        faults * 6 >= operations,
        "one request in five was throttled ({faults} faults, {operations} operations)"
    );
    assert_eq!(
        retries, faults,
        "every injected fault was retried, and nothing else was"
    );
}

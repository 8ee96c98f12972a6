//! An HTTP proxy in front of moto_server, on its own thread and runtime (so
//! it keeps answering while a test blocks on a child process). It can throttle
//! one request in N, and it can forward one request at a time.
//!
//! One at a time matters for conditional writes: moto_server is threaded and
//! checks `If-None-Match: *` and then stores the object as two steps without
//! a lock, so two concurrent conditional puts can both succeed. S3 makes that
//! write atomic; forwarding requests one by one gives moto the same guarantee.

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};

/// What the proxy does besides forwarding.
#[derive(Clone, Copy, Default)]
pub struct Options {
    /// Answer every n-th request with a throttling error instead.
    pub throttle_every: Option<u64>,
    /// Forward one request at a time.
    pub serialise: bool,
    /// The account that owns every bucket: an S3 request naming another
    /// as `x-amz-expected-bucket-owner` gets S3's 403 AccessDenied (moto
    /// ignores the header).
    pub bucket_owner: Option<&'static str>,
    /// An ASG whose scaling fails for lack of capacity: SetDesiredCapacity
    /// on it is answered (not forwarded) and DescribeScalingActivities
    /// reports the failed launch, as AWS would.
    pub no_capacity_for: Option<&'static str>,
    /// An EC2 action (`CreateSecurityGroup`) that is denied, answered as
    /// AWS answers a caller whose policy does not allow it.
    pub deny_ec2_action: Option<&'static str>,
    /// Every request is answered as AWS answers unknown credentials
    /// (`InvalidClientTokenId`, 403).
    pub reject_credentials: bool,
    /// Every request (a throttled one too) is held this long before it is
    /// answered: AWS's round trip, where moto answers in a millisecond.
    pub latency: Option<std::time::Duration>,
}

/// A running proxy; it stops with the test process.
pub struct Proxy {
    /// `http://127.0.0.1:<port>`
    pub endpoint: String,
    injected: Arc<AtomicU64>,
    forwarded: Arc<AtomicU64>,
    upstream_errors: Arc<AtomicU64>,
    s3_requests: Arc<std::sync::Mutex<Vec<S3Request>>>,
    fail_dns: Arc<std::sync::Mutex<Option<String>>>,
    in_flight: Arc<std::sync::Mutex<InFlight>>,
}

/// Requests in flight per service (from SigV4's credential scope), now
/// and at most.
#[derive(Default)]
struct InFlight {
    now: std::collections::BTreeMap<String, usize>,
    peak: std::collections::BTreeMap<String, usize>,
}

/// An S3 request as the proxy saw it.
#[derive(Debug, Clone)]
pub struct S3Request {
    /// Method and path.
    pub what: String,
    /// Its `x-amz-expected-bucket-owner`, if any.
    pub expected_owner: Option<String>,
}

impl Proxy {
    pub fn start(upstream: &str, options: Options) -> Proxy {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let endpoint = format!("http://{}", listener.local_addr().unwrap());
        let injected = Arc::new(AtomicU64::new(0));
        let forwarded = Arc::new(AtomicU64::new(0));
        let upstream_errors = Arc::new(AtomicU64::new(0));
        let s3_requests = Arc::new(std::sync::Mutex::new(Vec::new()));
        let fail_dns: Arc<std::sync::Mutex<Option<String>>> = Arc::default();
        let in_flight: Arc<std::sync::Mutex<InFlight>> = Arc::default();
        let shared = Arc::new(Shared {
            in_flight: in_flight.clone(),
            fail_dns: fail_dns.clone(),
            failed_at: std::sync::Mutex::new(None),
            s3_requests: s3_requests.clone(),
            upstream: upstream.to_string(),
            options,
            seen: AtomicU64::new(0),
            injected: injected.clone(),
            forwarded: forwarded.clone(),
            upstream_errors: upstream_errors.clone(),
            one_at_a_time: tokio::sync::Mutex::new(()),
            client: Client::builder(TokioExecutor::new()).build_http(),
        });
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).unwrap();
                loop {
                    let Ok((stream, _)) = listener.accept().await else {
                        continue;
                    };
                    let shared = shared.clone();
                    tokio::spawn(async move {
                        let svc = service_fn(move |req| {
                            let shared = shared.clone();
                            async move { Ok::<_, Infallible>(shared.handle(req).await) }
                        });
                        let _ = hyper::server::conn::http1::Builder::new()
                            .serve_connection(TokioIo::new(stream), svc)
                            .await;
                    });
                }
            });
        });
        Proxy {
            endpoint,
            injected,
            forwarded,
            upstream_errors,
            s3_requests,
            fail_dns,
            in_flight,
        }
    }

    /// The most requests each service had in flight at once.
    pub fn peak_in_flight(&self) -> std::collections::BTreeMap<String, usize> {
        self.in_flight.lock().unwrap().peak.clone()
    }

    /// Route53 change batches that name `name` fail (InvalidChangeBatch)
    /// until this is called again with None.
    pub fn fail_dns_changes_naming(&self, name: Option<&str>) {
        *self.fail_dns.lock().unwrap() = name.map(str::to_string);
    }

    /// The S3 requests so far.
    pub fn s3_requests(&self) -> Vec<S3Request> {
        self.s3_requests.lock().unwrap().clone()
    }

    /// Throttling errors answered so far.
    pub fn injected(&self) -> u64 {
        self.injected.load(Ordering::Relaxed)
    }

    /// Answers of moto that a client retries (5xx, or no answer at all):
    /// not injected, but retried all the same.
    pub fn upstream_errors(&self) -> u64 {
        self.upstream_errors.load(Ordering::Relaxed)
    }

    /// Requests passed to moto so far.
    pub fn forwarded(&self) -> u64 {
        self.forwarded.load(Ordering::Relaxed)
    }
}

struct Shared {
    in_flight: Arc<std::sync::Mutex<InFlight>>,
    upstream: String,
    options: Options,
    seen: AtomicU64,
    injected: Arc<AtomicU64>,
    forwarded: Arc<AtomicU64>,
    upstream_errors: Arc<AtomicU64>,
    one_at_a_time: tokio::sync::Mutex<()>,
    s3_requests: Arc<std::sync::Mutex<Vec<S3Request>>>,
    failed_at: std::sync::Mutex<Option<chrono::DateTime<chrono::Utc>>>,
    fail_dns: Arc<std::sync::Mutex<Option<String>>>,
    client: Client<hyper_util::client::legacy::connect::HttpConnector, Full<Bytes>>,
}

/// The service a request is signed for: SigV4's credential scope ends
/// `/<region>/<service>/aws4_request`.
fn service_of(headers: &hyper::HeaderMap) -> String {
    headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|a| a.split("/aws4_request").next())
        .and_then(|scope| scope.rsplit('/').next())
        .unwrap_or("unsigned")
        .to_string()
}

impl Shared {
    async fn handle(&self, req: Request<hyper::body::Incoming>) -> Response<Full<Bytes>> {
        let service = service_of(req.headers());
        {
            let mut f = self.in_flight.lock().unwrap();
            let now = f.now.entry(service.clone()).or_default();
            *now += 1;
            let now = *now;
            let peak = f.peak.entry(service.clone()).or_default();
            *peak = (*peak).max(now);
        }
        if let Some(latency) = self.options.latency {
            tokio::time::sleep(latency).await;
        }
        let answer = self.answer(req).await;
        *self
            .in_flight
            .lock()
            .unwrap()
            .now
            .get_mut(&service)
            .expect("counted on arrival") -= 1;
        answer
    }

    async fn answer(&self, req: Request<hyper::body::Incoming>) -> Response<Full<Bytes>> {
        let (parts, body) = req.into_parts();
        let body = body
            .collect()
            .await
            .map(|b| b.to_bytes())
            .unwrap_or_default();
        // SigV4's credential scope names the service: .../<region>/s3/aws4_request.
        let is_s3 = parts
            .headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|a| a.contains("/s3/aws4_request"));
        if is_s3 {
            let expected = parts
                .headers
                .get("x-amz-expected-bucket-owner")
                .and_then(|v| v.to_str().ok())
                .map(str::to_string);
            self.s3_requests.lock().unwrap().push(S3Request {
                what: format!("{} {}", parts.method, parts.uri),
                expected_owner: expected.clone(),
            });
            if let (Some(owner), Some(expected)) = (self.options.bucket_owner, &expected)
                && owner != expected
            {
                return Response::builder()
                    .status(403)
                    .header("content-type", "application/xml")
                    .body(Full::new(Bytes::from(
                        "<Error><Code>AccessDenied</Code><Message>Access Denied</Message><RequestId>proxy</RequestId></Error>",
                    )))
                    .unwrap();
            }
        }
        let dns_fault = self.fail_dns.lock().unwrap().clone();
        if let Some(name) = dns_fault
            && parts.uri.path().ends_with("/rrset")
            && String::from_utf8_lossy(&body).contains(&format!("<Name>{name}"))
        {
            self.injected.fetch_add(1, Ordering::Relaxed);
            return Response::builder()
                .status(400)
                .header("content-type", "text/xml")
                .body(Full::new(Bytes::from(format!(
                    "<?xml version=\"1.0\"?><ErrorResponse xmlns=\"https://route53.amazonaws.com/doc/2013-04-01/\"><Error><Type>Sender</Type><Code>InvalidChangeBatch</Code><Message>injected fault for {name}</Message></Error><RequestId>fault</RequestId></ErrorResponse>"
                ))))
                .unwrap();
        }
        if let Some(asg) = self.options.no_capacity_for
            && let Some(r) = self.no_capacity(asg, &body)
        {
            return r;
        }
        if self.options.reject_credentials {
            self.injected.fetch_add(1, Ordering::Relaxed);
            return Response::builder()
                .status(403)
                .header("content-type", "text/xml")
                .body(Full::new(Bytes::from(
                    "<ErrorResponse><Error><Type>Sender</Type><Code>InvalidClientTokenId</Code><Message>The security token included in the request is invalid.</Message></Error><RequestId>reject</RequestId></ErrorResponse>",
                )))
                .unwrap();
        }
        if let Some(action) = self.options.deny_ec2_action
            && String::from_utf8_lossy(&body).contains(&format!("Action={action}&"))
        {
            self.injected.fetch_add(1, Ordering::Relaxed);
            return Response::builder()
                .status(403)
                .header("content-type", "text/xml")
                .body(Full::new(Bytes::from(format!(
                    "<Response><Errors><Error><Code>UnauthorizedOperation</Code><Message>You are not authorized to perform this operation. User: arn:aws:iam::123456789012:user/test is not authorized to perform: ec2:{action} because no identity-based policy allows the ec2:{action} action</Message></Error></Errors><RequestID>deny</RequestID></Response>"
                ))))
                .unwrap();
        }
        let n = self.seen.fetch_add(1, Ordering::Relaxed);
        if let Some(every) = self.options.throttle_every
            && n % every == every - 1
        {
            self.injected.fetch_add(1, Ordering::Relaxed);
            return throttle(parts.uri.path(), &body);
        }
        let uri = format!(
            "{}{}",
            self.upstream,
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
        let _turn = match self.options.serialise {
            true => Some(self.one_at_a_time.lock().await),
            false => None,
        };
        self.forwarded.fetch_add(1, Ordering::Relaxed);
        let resp = match self
            .client
            .request(fwd.body(Full::new(body)).unwrap())
            .await
        {
            Ok(resp) => resp,
            Err(e) => {
                self.upstream_errors.fetch_add(1, Ordering::Relaxed);
                return Response::builder()
                    .status(502)
                    .body(Full::new(Bytes::from(format!("proxy: {e}"))))
                    .unwrap();
            }
        };
        if resp.status().is_server_error() {
            self.upstream_errors.fetch_add(1, Ordering::Relaxed);
        }
        let (rp, rb) = resp.into_parts();
        let rb = rb.collect().await.map(|b| b.to_bytes()).unwrap_or_default();
        Response::from_parts(rp, Full::new(rb))
    }
}

impl Shared {
    /// The answers of an ASG without capacity (see `Options`).
    fn no_capacity(&self, asg: &str, body: &[u8]) -> Option<Response<Full<Bytes>>> {
        let form: std::collections::HashMap<String, String> =
            form_urlencoded::parse(body).into_owned().collect();
        let xml = |s: String| {
            Response::builder()
                .status(200)
                .header("content-type", "text/xml")
                .body(Full::new(Bytes::from(s)))
                .unwrap()
        };
        const NS: &str = "http://autoscaling.amazonaws.com/doc/2011-01-01/";
        match form.get("Action").map(String::as_str) {
            Some("SetDesiredCapacity")
                if form.get("AutoScalingGroupName").map(String::as_str) == Some(asg) =>
            {
                *self.failed_at.lock().unwrap() = Some(chrono::Utc::now());
                Some(xml(format!(
                    "<SetDesiredCapacityResponse xmlns=\"{NS}\"><ResponseMetadata><RequestId>proxy</RequestId></ResponseMetadata></SetDesiredCapacityResponse>"
                )))
            }
            Some("DescribeScalingActivities") => {
                let members = match *self.failed_at.lock().unwrap() {
                    Some(at) => {
                        let t = at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
                        format!(
                            "<member><ActivityId>proxy-1</ActivityId><AutoScalingGroupName>{asg}</AutoScalingGroupName><Cause>the desired capacity was raised</Cause><StartTime>{t}</StartTime><EndTime>{t}</EndTime><StatusCode>Failed</StatusCode><StatusMessage>We currently do not have sufficient capacity in the Availability Zone you requested. Launching EC2 instance failed. InsufficientInstanceCapacity</StatusMessage><Progress>100</Progress></member>"
                        )
                    }
                    None => String::new(),
                };
                Some(xml(format!(
                    "<DescribeScalingActivitiesResponse xmlns=\"{NS}\"><DescribeScalingActivitiesResult><Activities>{members}</Activities></DescribeScalingActivitiesResult><ResponseMetadata><RequestId>proxy</RequestId></ResponseMetadata></DescribeScalingActivitiesResponse>"
                )))
            }
            _ => None,
        }
    }
}

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

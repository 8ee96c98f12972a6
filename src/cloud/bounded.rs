//! A bound on the AWS requests in flight, per service: discovery asks many
//! things at once, and AWS throttles per account and per API, so every
//! service client gets its own limit (`--parallelism`). It sits at the HTTP
//! layer, under the SDK's retries: a retry waiting out its backoff holds no
//! slot, and pagination, being one request after another, holds one.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use aws_smithy_runtime_api::client::http::{
    HttpClient, HttpConnector, HttpConnectorFuture, HttpConnectorSettings, SharedHttpClient,
    SharedHttpConnector,
};
use aws_smithy_runtime_api::client::orchestrator::HttpRequest;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_runtime_api::shared::IntoShared;
use tokio::sync::Semaphore;

/// The SDK's default HTTPS client: hyper 1 with rustls over aws-lc, the
/// proxy settings of the environment (`HTTPS_PROXY`, `NO_PROXY`), and the
/// connector settings (timeouts) of each service's configuration.
pub fn default_https_client() -> SharedHttpClient {
    use aws_smithy_http_client::proxy::ProxyConfig;
    use aws_smithy_http_client::tls::{Provider, rustls_provider::CryptoMode};
    use aws_smithy_http_client::{Builder, ConnectorBuilder};
    Builder::new().build_with_connector_fn(|settings, components| {
        let mut b = ConnectorBuilder::default().tls_provider(Provider::Rustls(CryptoMode::AwsLc));
        b.set_connector_settings(settings.cloned());
        if let Some(c) = components {
            b.set_sleep_impl(c.sleep_impl());
        }
        b.set_proxy_config(Some(ProxyConfig::from_env()));
        b.build()
    })
}

/// An HTTP client that lets at most `limit` requests through at once.
#[derive(Debug, Clone)]
pub struct Bounded {
    inner: SharedHttpClient,
    slots: Arc<Semaphore>,
    in_flight: Arc<AtomicUsize>,
    peak: Arc<AtomicUsize>,
}

impl Bounded {
    /// `inner`, bounded to `limit` requests at once (at least one).
    pub fn new(inner: SharedHttpClient, limit: usize) -> Bounded {
        Bounded {
            inner,
            slots: Arc::new(Semaphore::new(limit.max(1))),
            in_flight: Arc::default(),
            peak: Arc::default(),
        }
    }

    /// The most requests that were in flight at once so far.
    pub fn peak(&self) -> usize {
        self.peak.load(Ordering::Relaxed)
    }
}

impl HttpClient for Bounded {
    fn http_connector(
        &self,
        settings: &HttpConnectorSettings,
        components: &RuntimeComponents,
    ) -> SharedHttpConnector {
        BoundedConnector {
            inner: self.inner.http_connector(settings, components),
            bound: self.clone(),
        }
        .into_shared()
    }

    fn connector_metadata(
        &self,
    ) -> Option<aws_smithy_runtime_api::client::connector_metadata::ConnectorMetadata> {
        self.inner.connector_metadata()
    }
}

#[derive(Debug)]
struct BoundedConnector {
    inner: SharedHttpConnector,
    bound: Bounded,
}

impl HttpConnector for BoundedConnector {
    fn call(&self, request: HttpRequest) -> HttpConnectorFuture {
        let (inner, bound) = (self.inner.clone(), self.bound.clone());
        HttpConnectorFuture::new(async move {
            let _slot = bound
                .slots
                .acquire()
                .await
                .expect("the semaphore is never closed");
            let now = bound.in_flight.fetch_add(1, Ordering::Relaxed) + 1;
            bound.peak.fetch_max(now, Ordering::Relaxed);
            let answer = inner.call(request).await;
            bound.in_flight.fetch_sub(1, Ordering::Relaxed);
            answer
        })
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use aws_sdk_s3::primitives::SdkBody;
    use aws_smithy_runtime_api::http::Response;

    use super::*;

    /// A connector whose every request takes 20 ms.
    #[derive(Debug)]
    struct Slow;

    impl HttpConnector for Slow {
        fn call(&self, _request: HttpRequest) -> HttpConnectorFuture {
            HttpConnectorFuture::new(async {
                tokio::time::sleep(Duration::from_millis(20)).await;
                Ok(Response::new(200.try_into().unwrap(), SdkBody::empty()))
            })
        }
    }

    async fn peak_of(limit: usize, requests: usize) -> usize {
        let bound = Bounded::new(default_https_client(), limit);
        let connector = BoundedConnector {
            inner: Slow.into_shared(),
            bound: bound.clone(),
        };
        let calls = (0..requests).map(|_| connector.call(HttpRequest::new(SdkBody::empty())));
        for answer in futures::future::join_all(calls).await {
            assert_eq!(answer.unwrap().status().as_u16(), 200);
        }
        assert_eq!(bound.in_flight.load(Ordering::Relaxed), 0);
        bound.peak()
    }

    #[tokio::test]
    async fn no_more_than_the_limit_at_once() {
        assert_eq!(peak_of(3, 12).await, 3);
        assert_eq!(peak_of(1, 5).await, 1);
        assert_eq!(peak_of(0, 3).await, 1, "a limit of 0 is taken as 1");
        assert_eq!(peak_of(10, 4).await, 4);
    }
}

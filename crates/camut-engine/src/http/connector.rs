//! A connector that counts the connections it opens (`http.connections`).

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

use hyper::Uri;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tower_service::Service;

#[derive(Clone)]
pub(crate) struct CountingConnector {
    inner: HttpConnector,
    opened: Arc<AtomicU64>,
}

impl CountingConnector {
    pub fn new(opened: Arc<AtomicU64>) -> Self {
        let mut inner = HttpConnector::new();
        inner.set_nodelay(true);
        inner.enforce_http(true);
        CountingConnector { inner, opened }
    }
}

impl Service<Uri> for CountingConnector {
    type Response = TokioIo<TcpStream>;
    type Error = <HttpConnector as Service<Uri>>::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        let fut = self.inner.call(uri);
        let opened = self.opened.clone();
        Box::pin(async move {
            let io = fut.await?;
            opened.fetch_add(1, Ordering::Relaxed);
            Ok(io)
        })
    }
}

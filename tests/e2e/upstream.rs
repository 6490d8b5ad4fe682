//! A test upstream: an HTTPS (HTTP/1.1 + HTTP/2) and a plain-HTTP server on loopback that
//! echo what they receive as JSON, with a certificate from a CA made for the test (trusted
//! by the broker through `SSL_CERT_FILE`). `/big/<n>` streams `n` bytes instead.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::path::PathBuf;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, StreamBody, combinators::BoxBody};
use hyper::body::{Frame, Incoming};
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo};
use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};

pub struct Upstream {
    pub ip: String,
    pub https_port: u16,
    pub http_port: u16,
    /// PEM of the CA that signed the upstream's certificate.
    pub ca_file: PathBuf,
    _dir: tempfile::TempDir,
    _runtime: tokio::runtime::Runtime,
}

type Body = BoxBody<Bytes, Infallible>;

async fn handle(request: Request<Incoming>) -> Result<Response<Body>, Infallible> {
    let path = request.uri().path().to_owned();
    if let Some(n) = path
        .strip_prefix("/big/")
        .and_then(|n| n.parse::<usize>().ok())
    {
        let stream = Zeros {
            left: n,
            chunk: Bytes::from(vec![b'x'; 64 * 1024]),
        };
        return Ok(Response::new(BodyExt::boxed(StreamBody::new(stream))));
    }
    let mut headers: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (name, value) in request.headers() {
        headers
            .entry(name.as_str().to_owned())
            .or_default()
            .push(String::from_utf8_lossy(value.as_bytes()).into_owned());
    }
    let echo = serde_json::json!({
        "method": request.method().as_str(),
        "path": path,
        "query": request.uri().query(),
        "version": format!("{:?}", request.version()),
        "headers": headers,
    });
    let body = request
        .into_body()
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let mut echo = echo;
    echo["body"] = serde_json::json!(String::from_utf8_lossy(&body));
    let mut response = Response::new(BodyExt::boxed(Full::new(Bytes::from(echo.to_string()))));
    response
        .headers_mut()
        .insert("content-type", "application/json".parse().unwrap());
    Ok(response)
}

/// `n` bytes in chunks, produced lazily so the upstream itself never holds them.
struct Zeros {
    left: usize,
    chunk: Bytes,
}

impl futures_core::Stream for Zeros {
    type Item = Result<Frame<Bytes>, Infallible>;

    fn poll_next(
        mut self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Self::Item>> {
        if self.left == 0 {
            return std::task::Poll::Ready(None);
        }
        let take = self.left.min(self.chunk.len());
        self.left -= take;
        std::task::Poll::Ready(Some(Ok(Frame::data(self.chunk.slice(..take)))))
    }
}

impl Upstream {
    pub fn start() -> Self {
        Self::start_on("127.0.0.1")
    }

    /// Listens on a given loopback address (127.0.0.2 is not in `NO_PROXY`).
    pub fn start_on(ip: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let ca_key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "e2e upstream CA");
        let ca_cert = ca_params.self_signed(&ca_key).unwrap();
        let issuer = Issuer::new(ca_params, ca_key);
        let leaf_key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let names = [
            "localhost",
            "127.0.0.1",
            "127.0.0.2",
            "127.0.0.3",
            "api.anthropic.com",
        ]
        .map(String::from)
        .to_vec();
        let leaf = CertificateParams::new(names)
            .unwrap()
            .signed_by(&leaf_key, &issuer)
            .unwrap();
        let ca_file = dir.path().join("upstream-ca.pem");
        std::fs::write(&ca_file, ca_cert.pem()).unwrap();

        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(
                vec![leaf.der().clone()],
                rustls::pki_types::PrivateKeyDer::Pkcs8(leaf_key.serialize_der().into()),
            )
            .unwrap();
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));

        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let (https, http) = runtime.block_on(async {
            (
                tokio::net::TcpListener::bind((ip, 0)).await.unwrap(),
                tokio::net::TcpListener::bind((ip, 0)).await.unwrap(),
            )
        });
        let (https_port, http_port) = (
            https.local_addr().unwrap().port(),
            http.local_addr().unwrap().port(),
        );
        runtime.spawn(async move {
            loop {
                let Ok((stream, _)) = https.accept().await else {
                    continue;
                };
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    let Ok(tls) = acceptor.accept(stream).await else {
                        return;
                    };
                    let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(tls), hyper::service::service_fn(handle))
                        .await;
                });
            }
        });
        runtime.spawn(async move {
            loop {
                let Ok((stream, _)) = http.accept().await else {
                    continue;
                };
                tokio::spawn(async move {
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), hyper::service::service_fn(handle))
                        .await;
                });
            }
        });
        Self {
            ip: ip.to_owned(),
            https_port,
            http_port,
            ca_file,
            _dir: dir,
            _runtime: runtime,
        }
    }
}

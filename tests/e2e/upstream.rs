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
    /// `/sse` sends its first event at once and each further one only for a permit added
    /// here, so a test can prove an event arrived before the next was even sent.
    pub sse_gate: Arc<tokio::sync::Semaphore>,
    _dir: tempfile::TempDir,
    _runtime: tokio::runtime::Runtime,
}

type Body = BoxBody<Bytes, Infallible>;

async fn handle(
    sse_gate: Arc<tokio::sync::Semaphore>,
    request: Request<Incoming>,
) -> Result<Response<Body>, Infallible> {
    let path = request.uri().path().to_owned();
    if path.ends_with("/sse") {
        // Three events; the second carries the request's Authorization (for scrubbing).
        let authorization = request
            .headers()
            .get("authorization")
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
            .unwrap_or_default();
        let events = vec![
            "data: one\n\n".to_owned(),
            format!("data: auth={authorization}\n\n"),
            "data: three\n\n".to_owned(),
        ];
        let stream = futures_util::stream::unfold((0usize, events), move |(i, events)| {
            let gate = sse_gate.clone();
            async move {
                let event = events.get(i)?.clone();
                if i > 0 {
                    gate.acquire().await.ok()?.forget();
                }
                Some((Ok(Frame::data(Bytes::from(event))), (i + 1, events)))
            }
        });
        let mut response = Response::new(BodyExt::boxed(StreamBody::new(stream)));
        response
            .headers_mut()
            .insert("content-type", "text/event-stream".parse().unwrap());
        return Ok(response);
    }
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
    if path.ends_with("/trailers") {
        // gRPC-style: a body, then trailers; says which `te` and `authorization` it was sent
        // (`?grpc`: typed as gRPC, a body the broker does not scan).
        let mut trailers = hyper::HeaderMap::new();
        trailers.insert("grpc-status", "0".parse().unwrap());
        for (name, echoed) in [("te", "x-trailer-te"), ("authorization", "x-trailer-auth")] {
            if let Some(value) = request.headers().get(name) {
                trailers.insert(echoed, value.clone());
            }
        }
        let frames: Vec<Result<Frame<Bytes>, Infallible>> = vec![
            Ok(Frame::data(Bytes::from_static(b"payload"))),
            Ok(Frame::trailers(trailers)),
        ];
        let body = StreamBody::new(futures_util::stream::iter(frames));
        let mut response = Response::new(BodyExt::boxed(body));
        if request.uri().query() == Some("grpc") {
            response
                .headers_mut()
                .insert("content-type", "application/grpc".parse().unwrap());
        }
        return Ok(response);
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
    // `?binary` types the echo as a download.
    let content_type = match echo["query"].as_str() {
        Some("binary") => "application/octet-stream",
        _ => "application/json",
    };
    response
        .headers_mut()
        .insert("content-type", content_type.parse().unwrap());
    // `x-reflect: <name>` sends that request header back as `x-reflected`.
    if let Some(value) = echo["headers"]["x-reflect"][0]
        .as_str()
        .and_then(|name| echo["headers"][name][0].as_str())
    {
        response
            .headers_mut()
            .insert("x-reflected", value.parse().unwrap());
    }
    // `x-reflect-name: <name>` sends the last word of that request header back in a header
    // name, `x-seen-<word>`.
    if let Some(name) = echo["headers"]["x-reflect-name"][0]
        .as_str()
        .and_then(|name| echo["headers"][name][0].as_str())
        .and_then(|value| value.split(' ').next_back())
        .and_then(|word| {
            hyper::header::HeaderName::from_bytes(format!("x-seen-{word}").as_bytes()).ok()
        })
    {
        response.headers_mut().insert(name, "1".parse().unwrap());
    }
    // `?reason` puts the request's Authorization in an HTTP/1 reason phrase.
    if echo["query"].as_str() == Some("reason")
        && let Some(value) = echo["headers"]["authorization"][0].as_str()
        && let Ok(reason) = hyper::ext::ReasonPhrase::try_from(format!("Seen {value}").into_bytes())
    {
        response.extensions_mut().insert(reason);
    }
    // `?cookie` asks for a session cookie, as a login endpoint would set one.
    if echo["query"].as_str().is_some_and(|q| q.contains("cookie")) {
        response.headers_mut().insert(
            "set-cookie",
            "upstream-session=s3ss10n; Path=/".parse().unwrap(),
        );
    }
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

/// A CA made for one test and a leaf it signed for the loopback names and addresses.
pub struct TestCert {
    pub ca_pem: String,
    pub leaf_pem: String,
    pub leaf_der: rustls::pki_types::CertificateDer<'static>,
    pub key_pem: String,
    pub key_der: Vec<u8>,
}

impl TestCert {
    pub fn mint() -> Self {
        Self::mint_for(&[
            "localhost",
            "127.0.0.1",
            "127.0.0.2",
            "127.0.0.3",
            "api.anthropic.com",
        ])
    }

    /// A TLS acceptor presenting the leaf, offering `alpn` (most preferred first).
    pub fn acceptor(&self, alpn: &[&[u8]]) -> tokio_rustls::TlsAcceptor {
        let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(
            vec![self.leaf_der.clone()],
            rustls::pki_types::PrivateKeyDer::Pkcs8(self.key_der.clone().into()),
        )
        .unwrap();
        config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        tokio_rustls::TlsAcceptor::from(Arc::new(config))
    }

    /// Serves TLS with the leaf (offering `alpn`) on a fresh 127.0.0.1 port of `runtime`:
    /// each connection that completes the handshake goes to `handle` on a task of its own.
    /// Returns the port.
    pub fn serve<H, F>(&self, runtime: &tokio::runtime::Runtime, alpn: &[&[u8]], handle: H) -> u16
    where
        H: Fn(tokio_rustls::server::TlsStream<tokio::net::TcpStream>) -> F + Send + Sync + 'static,
        F: std::future::Future<Output = ()> + Send + 'static,
    {
        let acceptor = self.acceptor(alpn);
        let listener = runtime
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .unwrap();
        let port = listener.local_addr().unwrap().port();
        let handle = Arc::new(handle);
        runtime.spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let (acceptor, handle) = (acceptor.clone(), handle.clone());
                tokio::spawn(async move {
                    let _ = tcp.set_nodelay(true);
                    if let Ok(tls) = acceptor.accept(tcp).await {
                        handle(tls).await;
                    }
                });
            }
        });
        port
    }

    /// A TLS front for a loopback port, as a team server puts its API behind one: listens on
    /// `ip` with the leaf and relays each connection to `127.0.0.1:port`. Returns its port.
    pub fn tls_front(&self, runtime: &tokio::runtime::Runtime, ip: &str, port: u16) -> u16 {
        let acceptor = self.acceptor(&[b"http/1.1"]);
        let listener = runtime
            .block_on(tokio::net::TcpListener::bind((ip, 0)))
            .unwrap();
        let front = listener.local_addr().unwrap().port();
        runtime.spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    let (Ok(mut tls), Ok(mut back)) = (
                        acceptor.accept(tcp).await,
                        tokio::net::TcpStream::connect(("127.0.0.1", port)).await,
                    ) else {
                        return;
                    };
                    let _ = tokio::io::copy_bidirectional(&mut tls, &mut back).await;
                });
            }
        });
        front
    }

    /// A CA and a leaf it signed for `names`.
    pub fn mint_for(names: &[&str]) -> Self {
        let ca_key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        // Each CA named apart: OpenSSL (mitmproxy in the bench, curl) picks an issuer from a
        // bundle by name, so two CAs of one name fail each other's leaves as bad signatures.
        static MINTED: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let serial = MINTED.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        ca_params.distinguished_name.push(
            rcgen::DnType::CommonName,
            format!("e2e upstream CA {} {serial}", std::process::id()),
        );
        let ca_cert = ca_params.self_signed(&ca_key).unwrap();
        let issuer = Issuer::new(ca_params, ca_key);
        let leaf_key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let names = names.iter().map(|n| (*n).to_owned()).collect::<Vec<_>>();
        let leaf = CertificateParams::new(names)
            .unwrap()
            .signed_by(&leaf_key, &issuer)
            .unwrap();
        Self {
            ca_pem: ca_cert.pem(),
            leaf_pem: leaf.pem(),
            leaf_der: leaf.der().clone(),
            key_pem: leaf_key.serialize_pem(),
            key_der: leaf_key.serialize_der(),
        }
    }
}

impl Upstream {
    pub fn start() -> Self {
        Self::start_on("127.0.0.1")
    }

    /// Listens on a given loopback address (127.0.0.2 is not in `NO_PROXY`).
    pub fn start_on(ip: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let cert = TestCert::mint();
        let ca_file = dir.path().join("upstream-ca.pem");
        std::fs::write(&ca_file, &cert.ca_pem).unwrap();

        let acceptor = cert.acceptor(&[b"h2", b"http/1.1"]);

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
        let sse_gate = Arc::new(tokio::sync::Semaphore::new(0));
        let (gate, plain_gate) = (sse_gate.clone(), sse_gate.clone());
        runtime.spawn(async move {
            loop {
                let Ok((stream, _)) = https.accept().await else {
                    continue;
                };
                let acceptor = acceptor.clone();
                let gate = gate.clone();
                tokio::spawn(async move {
                    let Ok(tls) = acceptor.accept(stream).await else {
                        return;
                    };
                    let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                        .serve_connection(
                            TokioIo::new(tls),
                            hyper::service::service_fn(move |r| handle(gate.clone(), r)),
                        )
                        .await;
                });
            }
        });
        runtime.spawn(async move {
            loop {
                let Ok((stream, _)) = http.accept().await else {
                    continue;
                };
                let gate = plain_gate.clone();
                tokio::spawn(async move {
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(
                            TokioIo::new(stream),
                            hyper::service::service_fn(move |r| handle(gate.clone(), r)),
                        )
                        .await;
                });
            }
        });
        Self {
            ip: ip.to_owned(),
            https_port,
            http_port,
            ca_file,
            sse_gate,
            _dir: dir,
            _runtime: runtime,
        }
    }
}

//! The web UI in a real browser: Debian's headless Chromium driven over WebDriver
//! (chromedriver) with `fantoccini`. Each test starts its own chromedriver on a free port and
//! its own server; screenshots of the main pages are saved under
//! `target/browser-screenshots/` as test artefacts (not committed).

mod flows;
mod google;
mod provider;

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};
use hyper_util::client::legacy::connect::HttpConnector;
use serde_json::json;

use crate::harness::free_port;

/// A chromedriver process and a headless Chromium session on it; both end when dropped.
pub struct Browser {
    pub client: Client,
    driver: Child,
    shots: PathBuf,
}

fn require(tool: &str, package: &str) {
    let found = Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        found,
        "the browser tests need `{tool}`: install Debian's {package} (`apt-get install {package}`; .ci/run does)"
    );
}

impl Browser {
    pub async fn start() -> Self {
        require("chromium", "chromium");
        require("chromedriver", "chromium-driver");
        let port = free_port();
        let driver = Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start chromedriver");
        let url = format!("http://127.0.0.1:{port}");
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "chromedriver did not listen");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let mut caps = serde_json::Map::new();
        caps.insert(
            "goog:chromeOptions".into(),
            json!({
                "args": [
                    "--headless=new",
                    "--no-sandbox",
                    "--disable-gpu",
                    "--disable-dev-shm-usage",
                    "--window-size=1280,1000",
                    "--no-proxy-server",
                ],
            }),
        );
        let client = ClientBuilder::new(HttpConnector::new())
            .capabilities(caps)
            .connect(&url)
            .await
            .expect("a Chromium session over WebDriver");
        let shots = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("target")
            .join("browser-screenshots");
        std::fs::create_dir_all(&shots).unwrap();
        Self {
            client,
            driver,
            shots,
        }
    }

    pub async fn goto(&self, url: &str) {
        self.client.goto(url).await.unwrap();
    }

    pub async fn source(&self) -> String {
        self.client.source().await.unwrap()
    }

    pub async fn path(&self) -> String {
        self.client.current_url().await.unwrap().path().to_owned()
    }

    /// Types into the field with this id (clearing it first).
    pub async fn fill(&self, id: &str, text: &str) {
        let field = self
            .client
            .find(Locator::Id(id))
            .await
            .unwrap_or_else(|e| panic!("no field #{id}: {e}"));
        field.clear().await.unwrap();
        field.send_keys(text).await.unwrap();
    }

    pub async fn select(&self, id: &str, value: &str) {
        let select = self.client.find(Locator::Id(id)).await.unwrap();
        select.select_by_value(value).await.unwrap();
    }

    /// Clicks the first element matching a CSS selector (no page change expected).
    pub async fn click(&self, css: &str) {
        let element = self
            .client
            .find(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("nothing matches {css}: {e}"));
        element.click().await.unwrap();
    }

    /// Clicks the first element matching a CSS selector and waits for the next page.
    pub async fn follow(&self, css: &str) {
        self.mark().await;
        self.click(css).await;
        self.settle().await;
    }

    /// Clicks a button or link by its visible text and waits for the next page.
    pub async fn press(&self, label: &str) {
        let xpath =
            format!("//button[normalize-space()='{label}'] | //a[normalize-space()='{label}']");
        let element = self
            .client
            .find(Locator::XPath(&xpath))
            .await
            .unwrap_or_else(|e| panic!("no button or link \"{label}\": {e}"));
        self.mark().await;
        element.click().await.unwrap();
        self.settle().await;
    }

    /// Marks the current document, so [`Browser::settle`] can tell when another replaced it.
    async fn mark(&self) {
        self.client
            .execute("window.__avOld = true", vec![])
            .await
            .unwrap();
    }

    /// Waits until a new document has replaced the marked one and finished loading.
    async fn settle(&self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let loaded = self
                .client
                .execute(
                    "return window.__avOld === undefined && document.readyState === 'complete'",
                    vec![],
                )
                .await
                .ok()
                .and_then(|v| v.as_bool())
                .unwrap_or(false);
            if loaded {
                return;
            }
            assert!(Instant::now() < deadline, "the next page did not load");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The text of the page's first `h1`.
    pub async fn heading(&self) -> String {
        self.client
            .find(Locator::Css("h1"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }

    /// The visible notice of the page, if any.
    pub async fn notice(&self) -> String {
        match self.client.find(Locator::Css(".notice")).await {
            Ok(el) => el.text().await.unwrap_or_default(),
            Err(_) => String::new(),
        }
    }

    /// Saves a screenshot of the whole page as `<name>.png` among the test artefacts (the
    /// window grows to the page's height for it, then returns to its size).
    pub async fn shot(&self, name: &str) {
        let (width, height) = self.client.get_window_size().await.unwrap();
        let page = self
            .client
            .execute("return document.documentElement.scrollHeight", vec![])
            .await
            .ok()
            .and_then(|v| v.as_u64())
            .unwrap_or(height);
        let chrome = height.saturating_sub(
            self.client
                .execute("return window.innerHeight", vec![])
                .await
                .ok()
                .and_then(|v| v.as_u64())
                .unwrap_or(height),
        );
        let full = (page + chrome).clamp(height, 6000);
        self.resize(width as u32, full as u32).await;
        let png = self.client.screenshot().await.unwrap();
        self.resize(width as u32, height as u32).await;
        std::fs::write(self.shots.join(format!("{name}.png")), png).unwrap();
    }

    pub async fn resize(&self, width: u32, height: u32) {
        self.client.set_window_size(width, height).await.unwrap();
    }

    pub async fn close(mut self) {
        let _ = self.client.clone().close().await;
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

/// Runs an async browser test on a runtime of its own.
pub fn run<F: std::future::Future<Output = ()>>(test: F) {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
        .block_on(test);
}

//! A headless Chromium session over WebDriver, and whether one can be had here.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{Client as WebDriver, ClientBuilder, Locator};
use serde_json::{Value, json};

use super::PATIENCE;

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

/// Whether the browser is here; when not, says so (or fails under LOOP_REQUIRE_SYSTEM_TESTS).
pub fn needs_browser(test: &str) -> bool {
    let missing: Vec<&str> = [CHROMIUM, CHROMEDRIVER]
        .into_iter()
        .filter(|path| !Path::new(path).exists())
        .collect();
    if missing.is_empty() {
        return true;
    }
    let why = format!(
        "SKIPPED {test}: no {} (Debian: apt-get install chromium chromium-driver)",
        missing.join(" and ")
    );
    assert!(
        std::env::var_os("LOOP_REQUIRE_SYSTEM_TESTS").is_none(),
        "{why}, and LOOP_REQUIRE_SYSTEM_TESTS is set"
    );
    eprintln!("{why}");
    false
}

/// A headless Chromium session, its chromedriver stopped when dropped. Every call blocks, so a
/// test reads top to bottom and can call the blocking API client between them.
pub struct Browser {
    runtime: tokio::runtime::Runtime,
    driver: Option<WebDriver>,
    chromedriver: Child,
    _profile: tempfile::TempDir,
}

impl Browser {
    pub fn start() -> Browser {
        let mut chromedriver = Command::new(CHROMEDRIVER)
            .arg("--port=0")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start chromedriver");
        let mut lines = BufReader::new(chromedriver.stdout.take().expect("stdout")).lines();
        let port = lines
            .by_ref()
            .map_while(Result::ok)
            .find_map(|line| {
                line.split("started successfully on port ")
                    .nth(1)
                    .map(|rest| rest.trim_end_matches('.').trim().to_owned())
            })
            .expect("chromedriver says its port");
        // Drain the rest so chromedriver never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines {});
        let profile = tempfile::tempdir().expect("a browser profile dir");
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime");
        let mut capabilities = serde_json::Map::new();
        capabilities.insert(
            "goog:chromeOptions".to_owned(),
            json!({
                "binary": CHROMIUM,
                "args": [
                    "--headless=new",
                    "--no-sandbox",
                    "--disable-gpu",
                    "--disable-dev-shm-usage",
                    "--no-first-run",
                    "--hide-scrollbars",
                    "--window-size=1280,900",
                    format!("--user-data-dir={}", profile.path().display()),
                ],
            }),
        );
        let url = format!("http://127.0.0.1:{port}");
        let driver = runtime
            .block_on(async {
                let deadline = Instant::now() + Duration::from_secs(30);
                loop {
                    let connector = hyper_util::client::legacy::connect::HttpConnector::new();
                    match ClientBuilder::new(connector)
                        .capabilities(capabilities.clone())
                        .connect(&url)
                        .await
                    {
                        Ok(driver) => return Ok(driver),
                        Err(error) if Instant::now() > deadline => return Err(error),
                        Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
                    }
                }
            })
            .expect("a Chromium session");
        Browser {
            runtime,
            driver: Some(driver),
            chromedriver,
            _profile: profile,
        }
    }

    fn driver(&self) -> &WebDriver {
        self.driver.as_ref().expect("a session")
    }

    pub fn goto(&self, url: &str) {
        self.runtime
            .block_on(self.driver().goto(url))
            .unwrap_or_else(|error| panic!("open {url}: {error}"));
    }

    pub fn reload(&self) {
        self.runtime
            .block_on(self.driver().refresh())
            .expect("reload");
    }

    pub fn url(&self) -> String {
        self.runtime
            .block_on(self.driver().current_url())
            .expect("url")
            .to_string()
    }

    /// Runs `script` in the page; what it returns.
    pub fn js(&self, script: &str) -> Value {
        self.runtime
            .block_on(self.driver().execute(script, vec![]))
            .unwrap_or_else(|error| panic!("{script}: {error}"))
    }

    /// The text of the first element `css` finds, or `None` when there is none.
    pub fn text(&self, css: &str) -> Option<String> {
        let script = format!(
            "const el = document.querySelector({}); return el ? el.textContent : null;",
            json!(css)
        );
        self.js(&script).as_str().map(str::to_owned)
    }

    /// Waits until the text of `css` satisfies `check`; the text.
    pub fn wait_text(&self, css: &str, what: &str, check: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let text = self.text(css);
            if let Some(text) = &text
                && check(text)
            {
                return text.clone();
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what} in {css}; it shows {text:?} at {}",
                self.url()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Waits for `css` to be there and enabled, and clicks it.
    pub fn click(&self, css: &str) {
        let script = format!(
            "const el = document.querySelector({}); return !!el && !el.disabled;",
            json!(css)
        );
        let deadline = Instant::now() + PATIENCE;
        while self.js(&script) != Value::Bool(true) {
            assert!(Instant::now() < deadline, "{css} never became clickable");
            std::thread::sleep(Duration::from_millis(100));
        }
        // In the middle of the window, where the page's sticky header cannot be over it (the
        // driver's own scrolling may leave it under the header).
        self.js(&format!(
            "document.querySelector({}).scrollIntoView({{block: 'center'}}); return null;",
            json!(css)
        ));
        self.runtime
            .block_on(async { self.driver().find(Locator::Css(css)).await?.click().await })
            .unwrap_or_else(|error| panic!("click {css}: {error}"));
    }

    /// Chooses the option `value` of the select `css`.
    pub fn choose(&self, css: &str, value: &str) {
        self.runtime
            .block_on(async {
                let select = self.driver().find(Locator::Css(css)).await?;
                select.select_by_value(value).await
            })
            .unwrap_or_else(|error| panic!("choose {value} in {css}: {error}"));
    }

    pub fn type_into(&self, css: &str, text: &str) {
        self.runtime
            .block_on(async {
                let field = self.driver().find(Locator::Css(css)).await?;
                field.clear().await?;
                field.send_keys(text).await
            })
            .unwrap_or_else(|error| panic!("type into {css}: {error}"));
    }

    pub fn resize(&self, width: u32, height: u32) {
        self.runtime
            .block_on(self.driver().set_window_size(width, height))
            .expect("resize");
    }

    pub fn screenshot(&self, path: &Path) {
        let png = self
            .runtime
            .block_on(self.driver().screenshot())
            .expect("screenshot");
        std::fs::write(path, png).expect("write a screenshot");
    }

    /// The page's cumulative layout shift so far (what moved without the person asking).
    pub fn layout_shift(&self) -> f64 {
        let script = "return await new Promise((done) => {
            let total = 0;
            new PerformanceObserver((list) => {
                for (const entry of list.getEntries()) if (!entry.hadRecentInput) total += entry.value;
            }).observe({ type: 'layout-shift', buffered: true });
            setTimeout(() => done(total), 50);
        });";
        self.js(script).as_f64().expect("a number")
    }

    pub fn cookies(&self) -> Vec<fantoccini::cookies::Cookie<'static>> {
        self.runtime
            .block_on(self.driver().get_all_cookies())
            .expect("cookies")
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        if let Some(driver) = self.driver.take() {
            let _ = self.runtime.block_on(driver.close());
        }
        let _ = self.chromedriver.kill();
        let _ = self.chromedriver.wait();
    }
}

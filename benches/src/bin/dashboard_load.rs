//! The dashboard's board with many runs, in a real browser: what the page weighs and how soon
//! it paints and shows every run.
//!
//! ```text
//! dashboard_load [--runs 1000] [--loads 5]
//! ```
//!
//! The log is filled through the store with `--runs` finished runs (25 events each), then the
//! real `loopd` is started on it and headless Chromium (`/usr/bin/chromium` and
//! `/usr/bin/chromedriver`, or `$CHROMIUM` and `$CHROMEDRIVER`) loads `/` over WebDriver
//! `--loads` times after one warm-up. From the browser's own Performance API: the bytes
//! transferred for the page, its assets and the API answers it fetched (`transferSize` of the
//! navigation and resource entries; the event stream the page keeps open is not among them),
//! the first contentful paint, and when the board shows every run (the first animation frame
//! with all rows, from the start of the navigation). Prints one BENCHMARKS.md row of the
//! medians:
//!
//! `| runs | page weight (KiB, transferred) | first contentful paint ms | board complete ms |`
//!
//! `loopd` is taken from beside this binary (or `$LOOPD_BIN`); scratch files go under
//! `$LOOP_BENCH_DIR` (else the system temp dir).

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{Client as WebDriver, ClientBuilder};
use loop_benches::daemon::start;
use loop_benches::{bench_dir, row};
use serde_json::json;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let flags: HashMap<String, String> = args
        .chunks(2)
        .map(|pair| {
            let key = pair[0].trim_start_matches("--").to_owned();
            (key, pair.get(1).cloned().unwrap_or_default())
        })
        .collect();
    let flag = |name: &str, default: u64| -> u64 {
        flags
            .get(name)
            .map_or(default, |v| v.replace('_', "").parse().expect("a number"))
    };
    let runs = flag("runs", 1000);
    let loads = flag("loads", 5).max(1) as usize;

    let dir = bench_dir();
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).expect("data dir");
    fill(&data.join("loopd.db"), runs);
    let daemon = start(&data, &[]);

    let chromium = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".to_owned());
    let chromedriver =
        std::env::var("CHROMEDRIVER").unwrap_or_else(|_| "/usr/bin/chromedriver".to_owned());
    let tokio = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let mut driver_process = Chromedriver::start(&chromedriver);
    let profile = tempfile::tempdir().expect("a browser profile dir");
    let browser = tokio.block_on(session(driver_process.port, &chromium, profile.path()));

    let board = daemon.url("/");
    let expected = runs.min(1000);
    let mut samples = Vec::new();
    for load in 0..=loads {
        let sample = tokio.block_on(measure(&browser, &board, expected));
        eprintln!(
            "dashboard: load {load}{}: {:.1} KiB, first contentful paint {:.0} ms, board \
             complete {:.0} ms",
            if load == 0 { " (warm-up)" } else { "" },
            sample.kib,
            sample.fcp_ms,
            sample.complete_ms
        );
        if load > 0 {
            samples.push(sample);
        }
    }
    let _ = tokio.block_on(browser.close());
    driver_process.stop();

    let median = |pick: fn(&Sample) -> f64| {
        let mut values: Vec<f64> = samples.iter().map(pick).collect();
        values.sort_by(f64::total_cmp);
        values[values.len() / 2]
    };
    println!(
        "| runs | page weight (KiB, transferred) | first contentful paint ms | board complete ms |"
    );
    println!("|---|---|---|---|");
    row(&[
        &runs.to_string(),
        &format!("{:.1}", median(|s| s.kib)),
        &format!("{:.0}", median(|s| s.fcp_ms)),
        &format!("{:.0}", median(|s| s.complete_ms)),
    ]);
}

/// `runs` finished runs in the log at `db` (see [`loop_benches::fill_finished_runs`]).
fn fill(db: &std::path::Path, runs: u64) {
    let started = Instant::now();
    loop_benches::fill_finished_runs(db, runs, 4);
    eprintln!(
        "dashboard: {runs} finished runs written in {:.1} s",
        started.elapsed().as_secs_f64()
    );
}

/// One load of the board, from the browser's Performance API.
struct Sample {
    kib: f64,
    fcp_ms: f64,
    complete_ms: f64,
}

async fn measure(browser: &WebDriver, url: &str, rows: u64) -> Sample {
    // A fresh document each time (navigating to the same URL with a fragment would not be).
    browser.goto("about:blank").await.expect("blank page");
    browser.goto(url).await.expect("open the board");
    // Every animation frame until the board has every row; the time of that frame since the
    // navigation started (`performance.now()`).
    let script = format!(
        "return await new Promise((done) => {{
            const deadline = performance.now() + 60000;
            const check = () => {{
                const shown = document.querySelectorAll('tr[data-run]').length;
                if (shown >= {rows} || performance.now() > deadline) {{
                    done({{ shown, at: performance.now() }});
                }} else {{
                    requestAnimationFrame(check);
                }}
            }};
            check();
        }});"
    );
    let complete = browser.execute(&script, vec![]).await.expect("the board");
    assert!(
        complete["shown"].as_u64() >= Some(rows),
        "the board showed {complete} rows, not {rows}"
    );
    let figures = browser
        .execute(
            "const paint = performance.getEntriesByType('paint')
                .find((e) => e.name === 'first-contentful-paint');
            const entries = [...performance.getEntriesByType('navigation'),
                ...performance.getEntriesByType('resource')];
            return {
                fcp: paint ? paint.startTime : null,
                bytes: entries.reduce((n, e) => n + (e.transferSize || 0), 0),
            };",
            vec![],
        )
        .await
        .expect("the figures");
    Sample {
        kib: figures["bytes"].as_f64().unwrap_or(0.0) / 1024.0,
        fcp_ms: figures["fcp"].as_f64().expect("a first contentful paint"),
        complete_ms: complete["at"].as_f64().unwrap_or(f64::NAN),
    }
}

async fn session(port: u16, chromium: &str, profile: &std::path::Path) -> WebDriver {
    let mut capabilities = serde_json::Map::new();
    capabilities.insert(
        "goog:chromeOptions".to_owned(),
        json!({
            "binary": chromium,
            "args": [
                "--headless=new",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-dev-shm-usage",
                "--no-first-run",
                "--window-size=1280,900",
                format!("--user-data-dir={}", profile.display()),
            ],
        }),
    );
    let url = format!("http://127.0.0.1:{port}");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let connector = hyper_util::client::legacy::connect::HttpConnector::new();
        match ClientBuilder::new(connector)
            .capabilities(capabilities.clone())
            .connect(&url)
            .await
        {
            Ok(driver) => return driver,
            Err(error) if Instant::now() > deadline => panic!("no Chromium session: {error}"),
            Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    }
}

/// chromedriver on an ephemeral port, stopped when dropped.
struct Chromedriver {
    child: Child,
    port: u16,
}

impl Chromedriver {
    fn start(path: &str) -> Chromedriver {
        let mut child = Command::new(path)
            .arg("--port=0")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|error| panic!("start {path}: {error}"));
        let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
        let port = lines
            .by_ref()
            .map_while(Result::ok)
            .find_map(|line| {
                line.split("started successfully on port ")
                    .nth(1)
                    .and_then(|rest| rest.trim_end_matches('.').trim().parse().ok())
            })
            .expect("chromedriver says its port");
        // Drained so chromedriver never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines {});
        Chromedriver { child, port }
    }

    fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Chromedriver {
    fn drop(&mut self) {
        self.stop();
    }
}

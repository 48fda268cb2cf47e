//! An experiment run's chart: every measured candidate a point where its metric puts it, kept
//! and discarded told apart, the best so far in its noise band, and each point opening its own
//! diff — a discarded one too, from its ref. The run is `experiment.rs`'s: a real repository
//! whose measured program runs `loops.txt` loops, and the experimenter stub making better,
//! worse, neutral and better changes.

use serde_json::{Value, json};

use super::browser::{Browser, needs_browser};
use super::{PATIENCE, create};
use crate::experiment::{bench_repo, experiment_body};
use crate::support::{client, get_json, start_daemon, wait_for_end};

#[test]
fn the_experiment_chart_plots_every_candidate_and_each_point_opens_its_diff() {
    if !needs_browser("the_experiment_chart_plots_every_candidate_and_each_point_opens_its_diff") {
        return;
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let repo = bench_repo(dir.path());
    let daemon = start_daemon(&dir.path().join("data"), &[], &[]);
    let id = create(
        &daemon,
        &experiment_body(&repo, "sh bench.sh", json!({"iterations": "4"})),
    );
    assert_eq!(wait_for_end(&daemon, &id)["status"], "COMPLETED");
    let report = get_json(&daemon, &format!("/runs/{id}/experiment"));
    let rows = report["rows"].as_array().expect("rows").clone();
    assert_eq!(rows.len(), 5, "{report}");
    let events = || get_json(&daemon, &format!("/runs/{id}/events?format=json"));
    let before = events();

    // The tab shows itself on an experiment run.
    let browser = Browser::start();
    browser.goto(&daemon.url(&format!("/#/runs/{id}")));
    loop_testkit::until("the Experiment tab", PATIENCE, || {
        browser.js("const tab = document.querySelector('#tab-experiment'); return tab ? tab.hidden : null;") == json!(false)
    });
    // An experiment has no tasks: the header shows its standing in their place.
    loop_testkit::until("the experiment's standing in the header", PATIENCE, || {
        browser.text("#run-tasks-label").as_deref() == Some("Experiment")
    });
    let standing = browser.text("#run-tasks").unwrap_or_default();
    let summary = &report["summary"];
    assert!(
        standing.contains(&format!("(iteration {})", summary["best_iteration"]))
            && standing.starts_with("best ")
            && standing.contains("2 kept, 2 discarded"),
        "{standing} {summary}"
    );
    let cut = browser.js(
        "return [...document.querySelectorAll('#run-tasks .line')]
           .filter((line) => line.scrollWidth > line.clientWidth).map((line) => line.textContent);",
    );
    assert_eq!(cut, json!([]), "the standing cut short");
    browser.click("#tab-experiment");
    loop_testkit::until("a point per candidate", PATIENCE, || {
        browser.js("return document.querySelectorAll('#experiment-chart .exp-point').length;")
            == json!(rows.len())
    });
    // Each point: its iteration, kept or not, its metric, its commit; and where it is drawn.
    let points = browser.js(
        "return [...document.querySelectorAll('#experiment-chart .exp-point')].map((a) => {
           const r = a.firstElementChild.nextElementSibling.getBoundingClientRect();
           return {iteration: Number(a.dataset.iteration), kept: a.dataset.kept === 'true',
                   kind: a.classList.contains('baseline') ? 'baseline'
                       : a.classList.contains('kept') ? 'kept' : 'discarded',
                   metric: Number(a.dataset.metric), commit: a.dataset.commit,
                   x: r.x + r.width / 2, y: r.y + r.height / 2};
         });",
    );
    let points = points.as_array().expect("points");
    for (row, point) in rows.iter().zip(points) {
        assert_eq!(point["iteration"], row["iteration"], "{point} {row}");
        assert_eq!(point["kept"], row["kept"], "{point} {row}");
        assert_eq!(point["metric"], row["metric"], "{point} {row}");
        assert_eq!(point["commit"], row["commit"], "{point} {row}");
        let kind = if row["reason"] == "baseline" {
            "baseline"
        } else if row["kept"] == true {
            "kept"
        } else {
            "discarded"
        };
        assert_eq!(point["kind"], kind, "{point}");
    }
    // Later iterations further right; a larger metric higher up (a smaller y on the page).
    for pair in points.windows(2) {
        assert!(pair[0]["x"].as_f64() < pair[1]["x"].as_f64(), "{pair:?}");
    }
    for a in points {
        for b in points {
            if a["metric"].as_f64() < b["metric"].as_f64() {
                assert!(a["y"].as_f64() > b["y"].as_f64(), "{a} against {b}");
            }
        }
    }
    // The best so far: a band per row, as high as its spread, the line through its middle.
    let band = browser.js(
        "return [...document.querySelectorAll('#experiment-band rect')].map((r) => {
           const b = r.getBoundingClientRect();
           return [b.height, b.y + b.height / 2];
         });",
    );
    let band = band.as_array().expect("band");
    let bests = rows.iter().filter(|r| r["best"].is_number()).count();
    assert_eq!(band.len(), bests, "{band:?}");
    assert!(
        band.iter().all(|b| b[0].as_f64().is_some_and(|h| h >= 1.0)),
        "{band:?}"
    );
    let path = browser
        .js("return document.querySelector('#experiment-best').getAttribute('d');")
        .as_str()
        .expect("the best line")
        .to_owned();
    assert_eq!(
        path.matches('L').count() + path.matches('M').count(),
        2 * bests
    );
    // The chart's story in words.
    let summary = browser.text("#experiment-summary").unwrap_or_default();
    assert!(summary.contains("2 kept, 2 discarded"), "{summary}");

    // A count of loops is never negative: no tick of the scale is below zero. These values
    // span less than ten times: the scale is linear until the person asks for a log one.
    let ticks = browser.js(
        "return [...document.querySelectorAll('#experiment-chart > text.chart-label')]
           .map((t) => t.textContent).filter((t) => /^-?[0-9.e+-]+$/.test(t)).map(Number);",
    );
    let ticks = ticks.as_array().expect("ticks").clone();
    assert!(ticks.len() >= 2, "{ticks:?}");
    assert!(ticks.iter().all(|t| t.as_f64() >= Some(0.0)), "{ticks:?}");
    let scale = || browser.js("return document.querySelector('#experiment-chart').dataset.scale;");
    assert_eq!(scale(), json!("linear"));
    // Each effect is shown whole, with its interval, and each decision with its reason:
    // nothing cut by the columns' widths.
    let cut = browser.js(
        "return [...document.querySelectorAll('#experiment-rows td.c-effect, #experiment-rows td.c-decision')]
           .filter((td) => td.scrollWidth > td.clientWidth).map((td) => td.textContent);",
    );
    assert_eq!(cut, json!([]), "cells cut short");
    assert!(
        browser
            .text("#experiment-rows tr[data-iteration='2'] td.c-effect")
            .unwrap_or_default()
            .contains(" ["),
        "the interval beside the effect"
    );
    // (Clicked in the page: the pane is drawn anew as the run's events replay, which can leave
    // a driver's handle on the box stale; the choice outlives a redraw.)
    browser.js("document.querySelector('#experiment-log').click(); return null;");
    loop_testkit::until("the log scale", PATIENCE, || scale() == json!("log"));
    let order = browser.js(
        "return [...document.querySelectorAll('#experiment-chart .exp-point')].map((a) => {
           const r = a.firstElementChild.nextElementSibling.getBoundingClientRect();
           return [Number(a.dataset.metric), r.y + r.height / 2];
         });",
    );
    let order = order.as_array().expect("points");
    for a in order {
        for b in order {
            if a[0].as_f64() < b[0].as_f64() {
                assert!(
                    a[1].as_f64() > b[1].as_f64(),
                    "log scale: {a:?} against {b:?}"
                );
            }
        }
    }

    // A discarded point (iteration 2, 30% more loops) opens its own diff, from its ref.
    // (A click on the SVG link, dispatched in the page: the view is drawn anew for its URL.)
    browser.js(
        "document.querySelector(\"#experiment-chart .exp-point[data-iteration='2']\")
           .dispatchEvent(new MouseEvent('click', {bubbles: true, cancelable: true}));
         return null;",
    );
    browser.wait_text("#experiment-diff-title", "iteration 2's change", |t| {
        t == "Iteration 2: run 30% more loops"
    });
    let lines = browser.js(
        "return [...document.querySelectorAll('#experiment-diff .diff.unified > .dl')].map((el) => el.innerText);",
    );
    assert_eq!(
        lines,
        json!(["@@ -1 +1 @@", "-700", "+910"]),
        "{:?}",
        browser.text("#experiment-diff")
    );
    assert!(browser.url().ends_with("/experiment/2"));
    assert!(
        browser
            .text("#experiment-diff .diff-summary")
            .unwrap_or_default()
            .contains(&format!("refs/loop/experiments/{id}/2"))
    );

    // The target's label is never drawn over the best line or a point. The figures are the
    // real primes experiment's (specs/experiment.md, 00:10 UTC 2026-12-08; composed into a
    // report here): its best ends just under the target, its last fall crossing the dashed line
    // where the label stood at first.
    let clash = browser.js(
        "const { experimentChart } = await import('/ui/experiment.js');
         const row = (iteration, metric, best, kept, reason) => ({ iteration, metric, spread: 0.01 * (metric || 1),
           best, best_spread: 0.01 * best, kept, reason, commit: 'c' + iteration, idea: 'idea' });
         const report = { metric: 'ms', goal: 'minimize', target: 0.1, rows: [
           row(0, 80.275, 80.275, true, 'baseline'), row(1, 41.634, 41.634, true, 'improved'),
           row(2, 74.42, 41.634, false, 'worse'), row(3, 39.574, 41.634, false, 'within_noise'),
           row(4, 0.1777, 0.1777, true, 'improved'), row(5, null, 0.1777, false, 'verification_failed'),
           row(6, 0.0562, 0.0562, true, 'improved')] };
         const clashes = [];
         {
           const chart = experimentChart('x', report, null);
           chart.id = 'composed-chart';
           document.body.append(chart);
           const label = chart.querySelector('#experiment-target-label').getBBox();
           const best = chart.querySelector('#experiment-best');
           for (let x = label.x; x <= label.x + label.width; x += 1) {
             for (let y = label.y; y <= label.y + label.height; y += 1) {
               if (best.isPointInStroke(new DOMPoint(x, y))) clashes.push(['line', x, y]);
             }
           }
           for (const mark of chart.querySelectorAll('.exp-point circle, .exp-point rect')) {
             const m = mark.getBBox();
             if (m.x < label.x + label.width && label.x < m.x + m.width && m.y < label.y + label.height && label.y < m.y + m.height) {
               clashes.push(['point', mark.parentNode.dataset.iteration]);
             }
           }
           chart.remove();
         }
         return clashes.slice(0, 5);",
    );
    assert_eq!(clash, json!([]), "the target's label over the chart");

    // Reading is not doing: the chart and the diffs appended nothing.
    assert_eq!(events(), before);

    // The diff of a commit the run does not hold, or of no commit at all, is refused.
    loop_testkit::repo::git(&repo, &["checkout", "-qb", "elsewhere"]);
    std::fs::write(repo.join("other.txt"), "not the run's\n").expect("write");
    loop_testkit::repo::git(&repo, &["add", "-A"]);
    loop_testkit::repo::git(&repo, &["commit", "-qm", "not the run's"]);
    let other = loop_testkit::repo::git(&repo, &["rev-parse", "HEAD"]);
    for commit in [other.as_str(), "xyz", "12"] {
        let answer = client()
            .get(daemon.url(&format!("/runs/{id}/diff?commit={commit}")))
            .send()
            .expect("GET");
        assert_eq!(answer.status().as_u16(), 400, "{commit}");
        let body: Value = answer.json().expect("json");
        assert!(body["error"].is_string(), "{body}");
    }
}

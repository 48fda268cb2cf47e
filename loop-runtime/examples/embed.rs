//! An embedder's view of `loop-runtime`: open a log, submit a run, follow it, read the result.
//!
//! cargo run -p loop-runtime --example embed -- /path/to/repo specs/feature.md
//!
//! The workspace's `.loop/config` chooses the agent (`agent=claude` by default); this example
//! works in the workspace itself (`worktree_provider=none`).

use std::sync::Arc;

use loop_core::Seq;
use loop_core::config::Layer;
use loop_runtime::{RunRequest, Runtime};
use loop_store::SqliteStore;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let (Some(workspace), Some(spec)) = (args.next(), args.next()) else {
        return Err("usage: embed <workspace> <spec>".into());
    };
    let data_dir = std::env::temp_dir().join("loop-embed-example");
    std::fs::create_dir_all(&data_dir)?;

    // The log is the only state: open it, and a runtime over it.
    let store = Arc::new(SqliteStore::open(data_dir.join("loop.db"))?);
    let runtime = Runtime::builder()
        .store(store)
        .data_dir(&data_dir)
        .build()?;

    let config = Layer::from([("worktree_provider".to_owned(), "none".to_owned())]);
    let run = runtime
        .submit(RunRequest {
            repo_url: None,
            workspace_root: workspace.into(),
            spec_path: spec,
            config,
            ..RunRequest::default()
        })
        .await?;
    println!("run {} ({})", run.id, run.name);

    // Every event of the run, as it is appended, until it ends.
    let mut events = runtime.subscribe(Some(run.id), Seq(0));
    while let Some(record) = events.next().await {
        let record = record?;
        println!("{:>4} {}", record.seq, record.event.event_type());
        if record.event.is_terminal() {
            break;
        }
    }

    let run = runtime.wait(run.id).await?;
    println!(
        "{} after {} iterations, ${:.2}",
        run.status, run.iteration, run.cost_usd
    );
    runtime.shutdown().await;
    Ok(())
}

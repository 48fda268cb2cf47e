//! A step's output, live and resumable from a byte offset.

use std::time::Duration;

use loop_core::event::Phase;
use loop_core::{RunId, StepId};
use loop_runtime::{Chunk, Runtime};

use crate::support::{finish, request, runtime, scratch};

async fn first_implementation_step(runtime: &Runtime, run_id: RunId) -> StepId {
    for _ in 0..400 {
        let steps = runtime.steps(run_id).await.expect("steps");
        if let Some(step) = steps.iter().find(|s| s.phase == Phase::Implementation) {
            return step.id;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("no implementation step");
}

async fn collect(runtime: &Runtime, run_id: RunId, step_id: StepId, offset: u64) -> Vec<Chunk> {
    let mut stream = runtime
        .step_output(run_id, step_id, offset)
        .await
        .expect("output");
    let mut chunks = Vec::new();
    while let Some(chunk) = tokio::time::timeout(Duration::from_secs(30), stream.next())
        .await
        .expect("the stream ends with the step")
    {
        chunks.push(chunk.expect("chunk"));
    }
    chunks
}

#[tokio::test]
async fn output_is_streamed_live_and_resumes_from_an_offset_without_gap_or_repeat() {
    let scratch = scratch(1);
    let runtime = runtime(&scratch);
    let run = runtime
        .submit(request(&scratch, "chatty.sh", &[("reviewer", "false")]))
        .await
        .expect("submit");
    let step_id = first_implementation_step(&runtime, run.id).await;

    // Read live, while the agent is still printing.
    let live = collect(&runtime, run.id, step_id, 0).await;
    let text: String = live.iter().map(|c| c.content.as_str()).collect();
    let expected: String = (1..=20).map(|i| format!("line {i}\n")).collect();
    assert!(text.starts_with(&expected), "{text}");
    assert!(text.ends_with("DONE: task 1\n"), "{text}");
    let mut offset = 0;
    for chunk in &live {
        assert_eq!(chunk.offset, offset, "chunks are contiguous");
        offset += chunk.content.len() as u64;
    }

    // Resume from the middle of what was seen: exactly the rest.
    let middle = live[live.len() / 2].offset;
    let rest = collect(&runtime, run.id, step_id, middle).await;
    let rest: String = rest.iter().map(|c| c.content.as_str()).collect();
    assert_eq!(rest, text[middle as usize..]);

    finish(&runtime, run.id).await;
    runtime.shutdown().await;
}

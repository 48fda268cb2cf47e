//! `agent=demo`: a built-in agent for `loopctl demo` and for trying `loop` without a real one.
//!
//! It behaves like a well-mannered coding agent, in-process: each implementation call takes the
//! plan's first unchecked task, writes a small file for it, marks the task `[x]`, commits, and
//! answers `DONE: …`; with nothing left it answers the completion token. Reviews approve, and
//! postmortem analyses get a short fixed answer. It talks a little while it works, so following
//! a run shows live output.

use std::io;
use std::path::Path;
use std::time::Duration;

use loop_core::completion::TOKEN;
use loop_core::plan::Plan;

use loop_core::agent_stream::CallFigures;

use crate::agent::{Agent, AgentReply, AgentRequest, BoxFuture, CallEnd};
use crate::git;
use crate::process::Ended;

#[derive(Clone, Copy, Debug, Default)]
pub struct DemoAgent {
    /// A pause between lines, so output arrives as it would from a real agent.
    pub pace: Duration,
}

impl DemoAgent {
    pub fn new(pace: Duration) -> DemoAgent {
        DemoAgent { pace }
    }
}

fn env<'a>(request: &'a AgentRequest<'_>, key: &str) -> Option<&'a str> {
    request
        .env
        .iter()
        .find(|(name, _)| name == key)
        .map(|(_, value)| value.as_str())
}

impl Agent for DemoAgent {
    fn call<'a>(&'a self, request: AgentRequest<'a>) -> BoxFuture<'a, io::Result<AgentReply>> {
        Box::pin(async move {
            let phase = env(&request, "LOOP_PHASE")
                .unwrap_or("implementation")
                .to_owned();
            let plan_path = env(&request, "LOOP_PLAN_PATH").map(str::to_owned);
            let mut said = Vec::new();
            let answer = match (phase.as_str(), plan_path) {
                ("postmortem", _) => {
                    let analysis = env(&request, "LOOP_ANALYSIS").unwrap_or("summary");
                    said.push(format!(
                        "Reading the run's timeline for the {analysis} analysis."
                    ));
                    analysis_answer(analysis)
                }
                ("review", _) => {
                    said.push("Read the last commit against the plan and the spec.".to_owned());
                    said.push("The change does what its task asks.".to_owned());
                    "APPROVED".to_owned()
                }
                (_, Some(plan)) => implement(request.workdir, Path::new(&plan), &mut said).await?,
                (_, None) => "BLOCKED: no plan path was given".to_owned(),
            };
            for line in said.iter().chain(std::iter::once(&answer)) {
                if request.cancel.is_cancelled() {
                    break;
                }
                request.output.line(line);
                tokio::select! {
                    () = tokio::time::sleep(self.pace) => {}
                    () = request.cancel.cancelled() => {}
                }
            }
            Ok(AgentReply {
                end: CallEnd::Success,
                answer,
                exit_code: Some(0),
                process_end: Ended::Exited,
                figures: CallFigures::default(),
            })
        })
    }
}

/// A short fixed analysis: the demo reads nothing, so it claims nothing it could not know.
fn analysis_answer(analysis: &str) -> String {
    let body = match analysis {
        "spec-compliance" => {
            "## Verdict\n\ncompliant: each task of the plan wrote its note and was checked off.\n"
        }
        "run-quality" => {
            "## Timeline\n\nOne task per iteration, each reviewed and verified.\n\n\
             ## Anomalies\n\nNone: the demo agent never retries or waits.\n"
        }
        _ => {
            "## Outcome\n\nThe demo run did what its plan asked.\n\n\
             ## Root cause\n\nnone: the run did what was asked.\n\n\
             ## Changes to make\n\n- Try a real agent on a real spec.\n"
        }
    };
    format!("# {analysis} (demo agent)\n\n{body}")
}

/// Does the plan's next task; the answer line.
async fn implement(workdir: &Path, plan: &Path, said: &mut Vec<String>) -> io::Result<String> {
    let text = tokio::fs::read_to_string(plan).await?;
    let next = Plan::parse(&text)
        .next_task()
        .filter(|task| task.blocking)
        .cloned();
    let Some(next) = next else {
        said.push("Every task in the plan is checked.".to_owned());
        return Ok(TOKEN.to_owned());
    };
    let task = next.text.clone();
    said.push(format!("Taking the next task: {task}"));

    let slug = crate::request::slug(&task);
    let file = workdir.join("demo").join(format!("{slug}.txt"));
    tokio::fs::create_dir_all(workdir.join("demo")).await?;
    tokio::fs::write(&file, format!("{task}\n")).await?;
    said.push(format!("Wrote demo/{slug}.txt"));

    let updated: Vec<String> = text
        .lines()
        .enumerate()
        .map(|(i, line)| {
            if i + 1 == next.line {
                line.replacen("[ ]", "[x]", 1)
            } else {
                line.to_owned()
            }
        })
        .collect();
    tokio::fs::write(plan, updated.join("\n") + "\n").await?;
    said.push("Marked the task done in the plan.".to_owned());

    let committed = async {
        git::run(workdir, &["add", "-A"]).await?;
        git::run(workdir, &["commit", "-q", "-m", &format!("demo: {task}")]).await
    };
    match committed.await {
        Ok(_) => said.push(format!("Committed \"demo: {task}\".")),
        Err(error) => said.push(format!("Could not commit: {error}")),
    }
    Ok(format!("DONE: {task}"))
}

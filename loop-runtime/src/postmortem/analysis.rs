//! The work of a postmortem: snapshots of the run's working tree, the three analysis prompts
//! fed from the run's projections, the agent's answers, and the end.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use loop_core::config::AgentName;
use loop_core::event::{ArtifactWritten, Paid, PostmortemEnd, PostmortemStatus};
use loop_core::layout::tail_path_of;
use loop_core::postmortem::{ANALYSIS_DIR, Analysis, GIT_SNAPSHOTS, Inputs};
use loop_core::projection::{Export, RunView, Summary};
use loop_core::{Command, EventRecord, RunId};
use tokio::io::AsyncReadExt;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use super::Job;
use crate::accounts::Accounts;
use crate::agent::{Agent, CallEnd};
use crate::agent_call::{Ask, CallLog};
use crate::driver::new_step_id;
use crate::error::RuntimeError;
use crate::run_context::RunContext;
use crate::scratch::Scratch;
use crate::services::Services;

/// How long one git snapshot may take.
const GIT_TIMEOUT: Duration = Duration::from_secs(30);

/// What a postmortem works from: the run, and its log as read when the work began.
struct Context {
    run: RunContext,
    records: Vec<EventRecord>,
}

async fn context(services: &Services, run_id: RunId) -> Result<Context, RuntimeError> {
    let records = services.journal.read_run(run_id).await?;
    let run = services.run_context(run_id).await?;
    let io = |what: &str| {
        let what = what.to_owned();
        move |source| RuntimeError::Io { what, source }
    };
    run.files.create().map_err(io("the run directory"))?;
    run.files
        .create_dir(ANALYSIS_DIR)
        .map_err(io("analysis/"))?;
    Ok(Context { run, records })
}

/// The background part: snapshots (on demand), prompts, analyses, the end.
pub(super) async fn run(
    services: &Services,
    accounts: &Accounts,
    mut job: Job,
    cancel: &CancellationToken,
) {
    let run_id = job.run_id;
    let mut end = match work(services, accounts, &mut job, cancel).await {
        Ok(end) => end,
        Err(error) => PostmortemEnd {
            status: PostmortemStatus::Failed,
            reason: Some(error.to_string()),
            paid: Paid::default(),
        },
    };
    if cancel.is_cancelled() {
        end = PostmortemEnd {
            status: PostmortemStatus::Failed,
            reason: Some("interrupted: stopped before it ended (a retry or a shutdown)".to_owned()),
            paid: end.paid,
        };
    }
    info!(
        status = end.status.as_str(),
        reason = end.reason.as_deref().unwrap_or(""),
        "postmortem ended"
    );
    // Recorded once the log takes it, should it refuse writes now (a full disk): a postmortem
    // must not stay `running` until a restart.
    if let Err(error) = services
        .journal
        .execute_patiently(
            run_id,
            vec![Command::EndPostmortem(end)],
            &services.shutdown,
        )
        .await
    {
        warn!(%error, "cannot record the end of the postmortem");
    }
    let _ = services.write_projections(run_id).await;
}

async fn work(
    services: &Services,
    accounts: &Accounts,
    job: &mut Job,
    cancel: &CancellationToken,
) -> Result<PostmortemEnd, RuntimeError> {
    if job.snapshot
        && let Err(problem) = take_snapshots(services, job.run_id).await
    {
        job.problems.push(problem);
    }
    let context = context(services, job.run_id).await?;
    let agent_name = context.run.config.agent.clone();
    let agent = services.agent(agent_name.as_str());
    let skip = if job.prompt_only {
        Some((
            PostmortemStatus::Skipped,
            "prompt only: no agent was asked".to_owned(),
        ))
    } else if agent_name == AgentName::Command {
        Some((
            PostmortemStatus::Skipped,
            "agent=command answers no analysis prompts (its agent_cmd implements tasks); the \
             prompts are in analysis/"
                .to_owned(),
        ))
    } else if agent.is_none() {
        Some((
            PostmortemStatus::Failed,
            format!("no agent adapter named {:?}", agent_name.as_str()),
        ))
    } else {
        None
    };
    let model = job
        .model
        .clone()
        .unwrap_or_else(|| context.run.config.postmortem_model.clone());
    // No call of any kind goes to a held account: the analyses ask the account the run's own
    // next call would (a pool's choice, with its credentials), or none while the run's
    // accounts are held; the prompts are written either way.
    // After a restart the account book is rebuilt from the log first: before, it may not
    // know a limit met before the restart.
    let mut account_env = Vec::new();
    let skip = match skip {
        Some(skip) => Some(skip),
        None if !accounts.ready(cancel).await => Some((
            PostmortemStatus::Skipped,
            "stopped before the accounts were read from the log; no analysis was asked".to_owned(),
        )),
        None => match accounts.for_extra_call(
            job.run_id,
            &context.run.config,
            &model,
            services.clock.now_ms(),
        ) {
            Ok(account) => {
                account_env = accounts.env_of(&account);
                None
            }
            Err(hold) => Some((
                PostmortemStatus::Skipped,
                format!(
                    "{hold}; no analysis was asked (the prompts are in analysis/; ask again \
                     once the account serves)"
                ),
            )),
        },
    };
    let material = Material::read(&context).await;
    // The analyses read the spec and plan as the run left them, in a worktree of their own:
    // never in the person's checkout, and not in the run's worktree, which may be gone.
    let scratch = match skip {
        Some(_) => None,
        None => Some(analysis_checkout(services, &context.run).await),
    };
    let cwd = scratch
        .as_ref()
        .and_then(|s| s.as_ref().ok())
        .map(Scratch::path);
    let mut answers: Vec<(Analysis, String)> = Vec::new();
    let mut paid = Paid::default();
    for analysis in Analysis::ALL {
        if cancel.is_cancelled() {
            break;
        }
        let earlier: Vec<(Analysis, &str)> = answers
            .iter()
            .map(|(done, answer)| (*done, answer.as_str()))
            .collect();
        let prompt = loop_core::postmortem::prompt(analysis, &material.inputs(&context, &earlier));
        let prompt_name = format!("{ANALYSIS_DIR}/{}", analysis.prompt_file());
        record_file(
            services,
            &context.run,
            "analysis_prompt",
            &prompt_name,
            prompt.as_bytes(),
        )
        .await?;
        let Some(agent) = agent.as_deref().filter(|_| skip.is_none()) else {
            continue;
        };
        if cwd.is_none() {
            if let Some(Err(error)) = &scratch {
                job.problems.push(format!(
                    "{}: no scratch directory: {error}",
                    analysis.name()
                ));
            }
            continue;
        }
        let (answer, cost) = ask(
            services,
            &context.run,
            agent,
            Question {
                analysis,
                prompt: &prompt,
                model: &model,
                cwd,
                account_env: &account_env,
            },
            cancel,
        )
        .await;
        paid = paid.plus(cost);
        match answer {
            Ok(answer) => {
                let answer_name = format!("{ANALYSIS_DIR}/{}", analysis.answer_file());
                record_file(
                    services,
                    &context.run,
                    "analysis",
                    &answer_name,
                    answer.as_bytes(),
                )
                .await?;
                answers.push((analysis, answer));
            }
            Err(reason) => {
                warn!(analysis = analysis.name(), %reason, "analysis failed");
                job.problems.push(format!("{}: {reason}", analysis.name()));
            }
        }
    }
    if let Some(Ok(scratch)) = scratch {
        scratch.remove().await;
    }
    Ok(match skip {
        Some((status, reason)) => {
            job.problems.insert(0, reason);
            PostmortemEnd {
                status,
                reason: Some(job.problems.join("; ")),
                paid,
            }
        }
        None if job.problems.is_empty() => PostmortemEnd {
            status: PostmortemStatus::Ok,
            reason: None,
            paid,
        },
        None => PostmortemEnd {
            status: PostmortemStatus::Failed,
            reason: Some(job.problems.join("; ")),
            paid,
        },
    })
}

/// The projections and snapshots the prompts are fed from, read once.
struct Material {
    run_id: String,
    status: &'static str,
    ending: String,
    export: Option<Export>,
    last_tail: Option<String>,
    git_status: String,
    git_last_commit: String,
    last_commit_patch_bytes: u64,
    diff_bytes: u64,
    analysis_dir: String,
}

impl Material {
    async fn read(context: &Context) -> Material {
        let records = &context.records;
        let in_analysis = |name: &str| context.run.files.path(&format!("{ANALYSIS_DIR}/{name}"));
        let text = |name: &str| {
            let path = in_analysis(name);
            async move { tokio::fs::read_to_string(path).await.unwrap_or_default() }
        };
        let bytes = |name: &str| std::fs::metadata(in_analysis(name)).map_or(0, |m| m.len());
        let last_tail = match Summary::fold(records).and_then(|s| s.last_iteration_log) {
            Some(log) => tokio::fs::read_to_string(tail_path_of(&log)).await.ok(),
            None => None,
        };
        let view = RunView::fold(records);
        Material {
            run_id: context.run.run_id.to_string(),
            status: view.as_ref().map_or("UNKNOWN", |view| view.status.as_str()),
            ending: view.as_ref().map(ending).unwrap_or_default(),
            export: Export::of(records),
            last_tail,
            git_status: text("git-status.txt").await,
            git_last_commit: text("git-last-commit.txt").await,
            last_commit_patch_bytes: bytes("git-last-commit.patch"),
            diff_bytes: bytes("git-diff.patch"),
            analysis_dir: context
                .run
                .files
                .path(ANALYSIS_DIR)
                .to_string_lossy()
                .into_owned(),
        }
    }

    fn inputs<'a>(
        &'a self,
        context: &'a Context,
        earlier: &'a [(Analysis, &'a str)],
    ) -> Inputs<'a> {
        let export = self.export.as_ref();
        Inputs {
            run_id: &self.run_id,
            run_name: &context.run.created.name,
            status: self.status,
            ending: &self.ending,
            spec_path: &context.run.created.spec_path,
            plan_path: &context.run.created.plan_path,
            analysis_dir: &self.analysis_dir,
            summary_json: export.map_or("", |e| e.summary_json.as_str()),
            report_tsv: export.map_or("", |e| e.report_tsv.as_str()),
            run_log: export.map_or("", |e| e.run_log.as_str()),
            last_tail: self.last_tail.as_deref(),
            git_status: &self.git_status,
            git_last_commit: &self.git_last_commit,
            last_commit_patch_bytes: self.last_commit_patch_bytes,
            diff_bytes: self.diff_bytes,
            earlier,
        }
    }
}

/// How a run ended, in words: `complete_plan`, `failed: <reason>`.
fn ending(view: &RunView) -> String {
    let exit = view.exit_reason.map_or("", |e| e.as_str());
    match &view.failure_reason {
        Some(reason) => format!("{exit}: {reason}"),
        None => exit.to_owned(),
    }
}

/// Writes `name` in every copy of the run directory and records it.
async fn record_file(
    services: &Services,
    run: &RunContext,
    kind: &str,
    name: &str,
    contents: &[u8],
) -> Result<(), RuntimeError> {
    let written = run
        .files
        .write(kind, name, contents)
        .map_err(|source| RuntimeError::Io {
            what: name.to_owned(),
            source,
        })?;
    record(services, run.run_id, written).await
}

async fn record(
    services: &Services,
    run_id: RunId,
    written: Vec<ArtifactWritten>,
) -> Result<(), RuntimeError> {
    services
        .journal
        .execute(
            run_id,
            written.into_iter().map(Command::RecordArtifact).collect(),
        )
        .await?;
    Ok(())
}

/// A worktree of the run's branch (else of the workspace's `HEAD`) for the analyses.
async fn analysis_checkout(services: &Services, run: &RunContext) -> std::io::Result<Scratch> {
    let workspace = Path::new(&run.created.workspace_root);
    let rev = run
        .worktree
        .as_ref()
        .filter(|w| w.provider.has_worktree())
        .map_or("HEAD", |w| w.run_branch.as_str());
    Scratch::checkout(
        &services.data_dir,
        &format!("postmortem-{}", run.run_id),
        workspace,
        rev,
    )
    .await
}

/// What one analysis asks, and where the agent runs.
struct Question<'a> {
    analysis: Analysis,
    prompt: &'a str,
    model: &'a str,
    cwd: Option<&'a Path>,
    /// The credentials of the account the call goes to (a declared account's variables).
    account_env: &'a [(String, String)],
}

/// One analysis through the run's agent: its answer, or why there is none; and what the call
/// cost, whatever its end.
async fn ask(
    services: &Services,
    run: &RunContext,
    agent: &dyn Agent,
    question: Question<'_>,
    cancel: &CancellationToken,
) -> (Result<String, String>, Paid) {
    let Question {
        analysis,
        prompt,
        model,
        cwd,
        account_env,
    } = question;
    let name = analysis.name();
    let log_name = format!("{ANALYSIS_DIR}/{name}.log");
    let mut log = match CallLog::open(services, run, new_step_id(), &log_name) {
        Ok(log) => log,
        Err(error) => {
            return (
                Err(format!("cannot write {log_name}: {error}")),
                Paid::default(),
            );
        }
    };
    let mut env = run.env(0, "postmortem");
    env.push(("LOOP_ANALYSIS".to_owned(), name.to_owned()));
    env.extend(account_env.iter().cloned());
    let prompt_file = run
        .files
        .path(&format!("{ANALYSIS_DIR}/{}", analysis.prompt_file()));
    let ask = Ask {
        prompt,
        prompt_file: &prompt_file,
        model,
        env: &env,
        limits: run.agent_limits(),
        session: None,
        // Without a scratch checkout, an empty scratch directory: still not the person's.
        cwd,
    };
    info!(analysis = name, model, "analysis started");
    let reply = log.call(services, run, agent, ask, cancel).await;
    if let Ok((_, written)) = log.close(run, "analysis_") {
        let _ = record(services, run.run_id, written).await;
    }
    let reply = match reply {
        Ok(reply) => reply,
        Err(error) => {
            return (
                Err(format!("cannot start the agent: {error}")),
                Paid::default(),
            );
        }
    };
    let paid = reply.paid();
    let answer = match reply.end {
        CallEnd::Success if reply.answer.trim().is_empty() => {
            Err("the agent answered nothing".to_owned())
        }
        CallEnd::Success => Ok(reply.answer),
        CallEnd::UsageLimit { reason, .. } => Err(format!("usage limit: {reason}")),
        CallEnd::Transient { reason } | CallEnd::Auth { reason } | CallEnd::Failed { reason } => {
            Err(reason)
        }
    };
    (answer, paid)
}

/// The git snapshots of the run's working tree into `analysis/`, recorded. A git command that
/// fails leaves what it said in its file (a workspace that is no git repository, a branch
/// that is gone); only a file that cannot be written is an error.
pub(super) async fn take_snapshots(services: &Services, run_id: RunId) -> Result<(), String> {
    let context = context(services, run_id)
        .await
        .map_err(|error| format!("snapshots: {error}"))?;
    let range = context
        .run
        .worktree
        .as_ref()
        .filter(|w| w.provider.has_worktree() && w.base_branch != w.run_branch)
        .map(|w| format!("{}...{}", w.base_branch, w.run_branch));
    let mut written = Vec::new();
    for name in GIT_SNAPSHOTS {
        let args: Vec<&str> = match name {
            "git-status.txt" => vec!["status", "--short", "--branch", "--untracked-files=all"],
            "git-last-commit.txt" => vec!["log", "-1", "--stat", "--no-color", "--format=fuller"],
            "git-last-commit.patch" => vec!["format-patch", "-1", "--stdout", "--no-color", "HEAD"],
            _ => match &range {
                Some(range) => vec!["diff", "--no-color", "--no-ext-diff", range.as_str()],
                // The run worked on the workspace's own branch: there is no branch to compare.
                None => Vec::new(),
            },
        };
        let relative = format!("{ANALYSIS_DIR}/{name}");
        let path = context.run.files.path(&relative);
        git_to_file(&context.run.workdir, &args, &path)
            .await
            .map_err(|error| format!("{relative}: {error}"))?;
        written.extend(
            context
                .run
                .files
                .record("git_snapshot", &relative)
                .map_err(|error| format!("{relative}: {error}"))?,
        );
    }
    record(services, run_id, written)
        .await
        .map_err(|error| format!("snapshots: {error}"))
}

/// `git <args>` in `dir` with its output streamed into `path` (a patch can be large); on
/// failure the file holds what git said. No args: an empty file.
async fn git_to_file(dir: &Path, args: &[&str], path: &Path) -> std::io::Result<()> {
    let file = std::fs::File::create(path)?;
    if args.is_empty() {
        return Ok(());
    }
    let child = tokio::process::Command::new("git")
        .args(args)
        .current_dir(dir)
        .env("GIT_TERMINAL_PROMPT", "0")
        .stdin(Stdio::null())
        .stdout(Stdio::from(file))
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn();
    let failure = match child {
        Err(error) => Some(format!("cannot run git: {error}")),
        Ok(mut child) => {
            let mut stderr = String::new();
            let waited = tokio::time::timeout(GIT_TIMEOUT, async {
                if let Some(mut err) = child.stderr.take() {
                    let _ = err.read_to_string(&mut stderr).await;
                }
                child.wait().await
            })
            .await;
            match waited {
                Ok(Ok(status)) if status.success() => None,
                Ok(Ok(_)) => Some(stderr.trim().to_owned()),
                Ok(Err(error)) => Some(error.to_string()),
                Err(_) => Some(format!("no answer within {} s", GIT_TIMEOUT.as_secs())),
            }
        }
    };
    if let Some(failure) = failure {
        std::fs::write(path, format!("git {} failed: {failure}\n", args.join(" ")))?;
    }
    Ok(())
}

//! The strategies the scripts are drawn from: one [`Intent`] of each kind, and the payloads
//! and values inside them.

use super::*;

pub(super) fn a_move(intent: impl Strategy<Value = Intent>) -> impl Strategy<Value = Move> {
    (
        1i64..3_000,
        prop_oneof![8 => Just(0u64), 2 => 1u64..4],
        intent,
    )
        .prop_map(|(dt_ms, seq_gap, intent)| Move {
            dt_ms,
            seq_gap,
            intent,
        })
}

/// Any command; `ending` weighs Complete, Fail and Cancel, `aftermath` the commands for a
/// finished run (Retry, postmortem, Review).
pub(super) fn intent(ending: u32, aftermath: u32) -> impl Strategy<Value = Intent> {
    use proptest::option::of;

    let advance = (step_started(), step_finished(), text(), postmortem_status()).prop_map(
        |(step, outcome, reason, status)| Intent::Advance {
            step,
            outcome,
            postmortem: PostmortemStart { reason },
            end: PostmortemEnd {
                status,
                reason: None,
                paid: Default::default(),
            },
        },
    );
    let start_step = (
        proptest::option::weighted(0.1, any::<Index>()),
        step_started(),
    )
        .prop_map(|(reuse, step)| Intent::StartStep { reuse, step });
    let finish_step = (target(), proptest::bool::weighted(0.1), step_finished()).prop_map(
        |(target, wrong_phase, step)| Intent::FinishStep {
            target,
            wrong_phase,
            step,
        },
    );
    let record_retry = (target(), 1u32..5, 0u64..60_000, text()).prop_map(
        |(target, attempt, delay_ms, reason)| Intent::RecordRetry {
            target,
            retry: AgentRetry {
                step_id: placeholder_step(),
                attempt,
                delay_ms,
                reason,
                count: None,
                paid: Default::default(),
                account: None,
                limited_until_ms: None,
                window: None,
                next_account: None,
                budget: None,
            },
        },
    );
    let record_wait =
        (of(target()), 0i64..86_400_000, text()).prop_map(|(target, later, reason)| {
            Intent::RecordWait {
                target,
                wait: AgentWaiting {
                    step_id: None,
                    until_ms: T0 + later,
                    reason,
                    paid: Default::default(),
                    account: None,
                    window: None,
                    pool_wait: None,
                },
            }
        });
    let record_verification = (target(), text(), exit_code(), 0u64..120_000).prop_map(
        |(target, command, exit_code, duration_ms)| Intent::RecordVerification {
            target,
            command: VerificationCommand {
                step_id: placeholder_step(),
                command,
                exit_code,
                duration_ms,
            },
        },
    );
    let detect = (iteration(), of(text())).prop_map(|(iteration, commit)| {
        Intent::DetectCompletion(CompletionDetected { iteration, commit })
    });
    let reject = (iteration(), text()).prop_map(|(iteration, reason)| {
        Intent::RejectCompletion(CompletionRejected { iteration, reason })
    });
    let signal = (iteration(), text(), text()).prop_map(|(iteration, signal, detail)| {
        Intent::RecordWatchdogSignal(WatchdogSignal {
            iteration,
            signal: signal.into(),
            detail,
        })
    });
    let rewrite = (text(), text(), text()).prop_map(|(signal, prompt_before, prompt_after)| {
        Intent::RewritePrompt(WatchdogRewrite {
            signal: signal.as_str().into(),
            prompt_before,
            prompt_after,
        })
    });
    let select_provider = text().prop_map(|provider| {
        Intent::SelectWorktreeProvider(WorktreeProviderSelected {
            provider: provider.into(),
        })
    });
    let create_worktree = (text(), text(), text(), text(), any::<bool>()).prop_map(
        |(provider, path, base_branch, run_branch, reused)| {
            Intent::CreateWorktree(WorktreeCreated {
                provider: provider.into(),
                path,
                base_branch,
                run_branch,
                reused,
            })
        },
    );
    let remove_worktree = text().prop_map(|path| Intent::RemoveWorktree(WorktreeRemoved { path }));
    let complete = (exit_reason(), iteration()).prop_map(|(exit_reason, completed_iteration)| {
        Intent::Complete(RunCompleted {
            exit_reason,
            completed_iteration,
        })
    });
    let fail = (exit_reason(), text()).prop_map(|(exit_reason, reason)| Intent::Fail {
        exit_reason,
        reason,
    });
    let merge = (text(), of(text()), of(text())).prop_map(|(strategy, commit, conflict)| {
        Intent::Merge(MergeFinished {
            strategy,
            commit,
            conflict,
        })
    });
    let start_merge = (target(), text(), text(), of(text()), text()).prop_map(
        |(target, branch, strategy, onto, commit)| Intent::StartMerge {
            target,
            merge: MergeStarted {
                step_id: placeholder_step(),
                target: branch,
                strategy,
                onto,
                commit,
            },
        },
    );
    let start_postmortem =
        text().prop_map(|reason| Intent::StartPostmortem(PostmortemStart { reason }));
    let end_postmortem = postmortem_status().prop_map(|status| {
        Intent::EndPostmortem(PostmortemEnd {
            status,
            reason: None,
            paid: Default::default(),
        })
    });
    let review = (
        text(),
        proptest::collection::btree_map(text(), text(), 0..3),
    )
        .prop_map(|(action, detail)| {
            Intent::Review(ReviewAction {
                action: action.into(),
                detail,
            })
        });
    // Mostly well-formed comments; now and then one without a path, a line or words.
    let comment = (
        prop_oneof![4 => text(), 1 => Just(String::new())],
        prop_oneof![4 => 1u32..400, 1 => Just(0u32)],
        text(),
        any::<bool>(),
    )
        .prop_map(|(path, line, body, old)| {
            Intent::Comment(ReviewComment {
                path,
                line,
                body,
                side: if old {
                    loop_core::event::DiffSide::Old
                } else {
                    loop_core::event::DiffSide::New
                },
            })
        });
    let request_changes = of(text()).prop_map(Intent::RequestChanges);

    let record_baseline = (target(), iteration(), samples(), of(drift())).prop_map(
        |(target, iteration, baseline, drift)| Intent::RecordBaseline {
            target,
            measured: ExperimentBaseline {
                step_id: placeholder_step(),
                iteration,
                metric: "seconds".to_owned(),
                baseline,
                drift,
            },
        },
    );
    let record_measurement = (target(), iteration(), samples(), samples()).prop_map(
        |(target, iteration, candidate, best)| Intent::RecordMeasurement {
            target,
            measured: ExperimentMeasured {
                step_id: placeholder_step(),
                iteration,
                metric: "seconds".to_owned(),
                candidate,
                best,
            },
        },
    );
    let decide_experiment = (
        iteration(),
        any::<bool>(),
        proptest::sample::select(vec![
            Reason::Improved,
            Reason::WithinNoise,
            Reason::Worse,
            Reason::NoChange,
            Reason::VerificationFailed,
        ]),
        of(text()),
        of(text()),
        of(-1.0f64..1.0),
    )
        .prop_map(|(iteration, kept, reason, commit, idea, effect)| {
            Intent::DecideExperiment(ExperimentDecided {
                iteration,
                decision: if kept {
                    Decision::Kept
                } else {
                    Decision::Discarded
                },
                reason,
                commit,
                best_commit: "b".repeat(40),
                idea,
                metric: effect.map(|e| 1.0 + e),
                best_metric: effect.map(|_| 1.0),
                effect,
                interval: effect.map(|e| [e - 0.1, e + 0.1]),
                kept_ref: None,
            })
        });

    prop_oneof![
        24 => advance,
        1 => run_created().prop_map(Intent::Create),
        1 => (text(), proptest::sample::select(vec![NameSource::Haiku, NameSource::SpecSlug]))
            .prop_map(|(name, name_source)| Intent::Name(RunNamed { name, name_source, paid: Default::default(),  })),
        1 => (text(), of(text()))
            .prop_map(|(node_id, took_over_from)| Intent::Claim(RunClaimed { node_id, lease_ms: 15_000, took_over_from })),
        2 => Just(Intent::Start),
        1 => of(text()).prop_map(Intent::Pause),
        1 => Just(Intent::RequestPause),
        2 => Just(Intent::Resume),
        ending => of(text()).prop_map(Intent::Cancel),
        aftermath => Just(Intent::Retry),
        4 => start_step,
        6 => finish_step,
        1 => record_retry,
        1 => record_wait,
        4 => record_verification,
        1 => detect,
        1 => reject,
        1 => signal,
        1 => rewrite,
        1 => select_provider,
        1 => create_worktree,
        1 => remove_worktree,
        ending => complete,
        ending => fail,
        1 => Just(Intent::Recover),
        1 => start_merge,
        1 => merge,
        1 => artifact().prop_map(Intent::RecordArtifact),
        aftermath => start_postmortem,
        aftermath => end_postmortem,
        aftermath => review,
        2 => record_baseline,
        3 => record_measurement,
        1 => decide_experiment,
        aftermath => comment,
        aftermath => request_changes,
    ]
}

/// A commit's samples: a few positive numbers around 1.
pub(super) fn samples() -> impl Strategy<Value = Samples> {
    (
        string_regex("[0-9a-f]{40}").expect("valid regex"),
        proptest::collection::vec(0.5f64..2.0, 1..6),
    )
        .prop_map(|(commit, values)| loop_core::experiment::samples(&commit, values))
}

pub(super) fn drift() -> impl Strategy<Value = loop_core::event::Drift> {
    (-0.5f64..0.5, 0.0f64..0.2).prop_map(|(effect, half)| loop_core::event::Drift {
        effect,
        interval: [effect - half, effect + half],
        beyond_noise: half < effect.abs(),
    })
}

pub(super) fn target() -> impl Strategy<Value = Target> {
    prop_oneof![
        8 => Just(Target::Open),
        1 => any::<Index>().prop_map(Target::Started),
        1 => Just(Target::Fresh),
    ]
}

/// Mostly tame text, sometimes with the tabs, line breaks, quotes and non-ASCII that the
/// one-line formats and JSON must cope with.
pub(super) fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => string_regex("[a-z][a-z0-9_ ./-]{0,10}").expect("valid regex"),
        1 => string_regex("[\t\n\r \"\\\\a-z\u{e9}\u{6f22}\u{1f600}]{0,6}").expect("valid regex"),
    ]
}

pub(super) fn iteration() -> impl Strategy<Value = u32> {
    1u32..6
}

pub(super) fn exit_code() -> impl Strategy<Value = Option<i32>> {
    proptest::option::of(prop_oneof![3 => Just(0), 1 => -2i32..130])
}

pub(super) fn exit_reason() -> impl Strategy<Value = ExitReason> {
    proptest::sample::select(vec![
        ExitReason::CompletePlan,
        ExitReason::CompleteReviewer,
        ExitReason::IterationsExhausted,
        ExitReason::ClaudeFailed,
        ExitReason::BudgetExhausted,
        ExitReason::Failed,
        ExitReason::Canceled,
    ])
}

pub(super) fn postmortem_status() -> impl Strategy<Value = PostmortemStatus> {
    proptest::sample::select(vec![
        PostmortemStatus::Ok,
        PostmortemStatus::Failed,
        PostmortemStatus::Skipped,
    ])
}

pub(super) fn phase() -> impl Strategy<Value = Phase> {
    prop_oneof![
        4 => Just(Phase::Implementation),
        2 => Just(Phase::Review),
        3 => Just(Phase::Verification),
        1 => Just(Phase::Watchdog),
        // The merge and experiment phases are the only ones whose events (MERGE_STARTED,
        // EXPERIMENT_*) need an open step of that phase: weighed so that a sample reaches them.
        2 => Just(Phase::Merge),
        2 => Just(Phase::Measurement),
        2 => Just(Phase::Baseline),
    ]
}

/// Mostly final statuses; sometimes an open one, which may not finish a step.
pub(super) fn finish_status() -> impl Strategy<Value = StepStatus> {
    prop_oneof![
        12 => Just(StepStatus::Succeeded),
        3 => Just(StepStatus::Failed),
        1 => Just(StepStatus::Canceled),
        1 => Just(StepStatus::Interrupted),
        1 => Just(StepStatus::Queued),
        1 => Just(StepStatus::InProgress),
    ]
}

pub(super) fn run_created() -> impl Strategy<Value = RunCreated> {
    let name_source = proptest::sample::select(vec![
        NameSource::Haiku,
        NameSource::SpecSlug,
        NameSource::Explicit,
    ]);
    let key = proptest::sample::select(vec![
        "base_branch",
        "merge_target_branch",
        "merge_strategy",
        "model",
        "completion_mode",
        "log_dir",
        "iterations",
    ]);
    (
        text(),
        name_source,
        string_regex("/work/[a-z]{1,6}").expect("valid regex"),
        text(),
        text(),
        proptest::collection::btree_map(key.prop_map(str::to_owned), text(), 0..4),
        proptest::bool::weighted(0.3),
    )
        .prop_map(
            |(name, name_source, workspace_root, spec_path, plan_path, config, experiment)| {
                let mut config: BTreeMap<String, String> = config.into_iter().collect();
                if experiment {
                    config.insert("mode".to_owned(), "experiment".to_owned());
                    config.insert("measure_cmd".to_owned(), "./bench".to_owned());
                }
                RunCreated {
                    name,
                    name_source,
                    workspace_root,
                    spec_path,
                    plan_path,
                    config,
                    prompt_template: Default::default(),
                    tasks_done: None,
                    tasks_total: None,
                }
            },
        )
}

pub(super) fn step_started() -> impl Strategy<Value = StepStarted> {
    (phase(), iteration(), 1u32..4, proptest::option::of(text())).prop_map(
        |(phase, iteration, attempt, prompt_path)| StepStarted {
            step_id: placeholder_step(),
            phase,
            iteration,
            attempt,
            prompt_path,
            session_id: Default::default(),
            resumed: Default::default(),
            account: None,
        },
    )
}

pub(super) fn step_finished() -> impl Strategy<Value = StepFinished> {
    let outcome = (
        phase(),
        finish_status(),
        exit_code(),
        0u64..600_000,
        proptest::option::of(text()),
        0u64..1_000_000,
        0u64..10_000,
    );
    let figures = (
        proptest::option::of(
            (0u64..200_000, 0u64..50_000).prop_map(|(input, output)| Tokens {
                input,
                output,
                cached: Default::default(),
                cache_write: Default::default(),
                reasoning: Default::default(),
            }),
        ),
        // Any finite cost: summing and JSON must keep every bit.
        proptest::option::of(0.0f64..5.0),
        proptest::option::of(0u32..20),
        proptest::option::of(0u32..20),
        proptest::option::of(text()),
    );
    (outcome, figures).prop_map(
        |(
            (phase, status, exit_code, duration_ms, output_path, output_bytes, output_lines),
            (tokens, cost_usd, tasks_done, tasks_total, message),
        )| StepFinished {
            exit_code,
            duration_ms,
            output_path,
            output_bytes,
            output_lines,
            tokens,
            cost_usd,
            tasks_done,
            tasks_total,
            message,
            ..finished_payload(placeholder_step(), phase, status)
        },
    )
}

pub(super) fn artifact() -> impl Strategy<Value = ArtifactWritten> {
    (
        text(),
        text(),
        proptest::sample::select(vec![ArtifactLocation::Workspace, ArtifactLocation::Global]),
        string_regex("[0-9a-f]{64}").expect("valid regex"),
        0u64..1_000_000,
    )
        .prop_map(|(kind, path, location, sha256, bytes)| ArtifactWritten {
            kind,
            path,
            location,
            sha256,
            bytes,
        })
}

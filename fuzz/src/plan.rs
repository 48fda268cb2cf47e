//! `plan_parse`: a checklist plan ([`loop_core::plan::Plan::parse`]).

use loop_core::plan::{Plan, TaskState};

/// Parses arbitrary text as a plan and checks what came out.
///
/// Parsing never panics, and:
/// - `tasks_done ≤ tasks_total`, `tasks_total` counts the blocking tasks, and the plan is
///   complete exactly when every blocking task is done or reviewed;
/// - each task's `line` is a line of the text (1 to the line count), the tasks are in line
///   order, and that line holds the task's text, which has no surrounding whitespace; an
///   optional task never blocks;
/// - `next_task` is a pending task: the first blocking one, else the first optional one, and
///   there is none only when no such task is pending;
/// - appending a newline to the text changes nothing.
pub fn plan_parse(data: &[u8]) -> Plan {
    let text = crate::text(data);
    let plan = Plan::parse(&text);
    let lines: Vec<&str> = text.lines().collect();

    let (done, total) = (plan.tasks_done(), plan.tasks_total());
    assert!(done <= total, "{done} tasks done of {total}");
    let blocking = plan.tasks.iter().filter(|task| task.blocking).count();
    assert_eq!(
        total as usize, blocking,
        "tasks_total is not the blocking tasks"
    );
    assert_eq!(
        plan.is_complete(),
        done == total,
        "complete = {}, with {done} of {total} done",
        plan.is_complete()
    );

    let mut previous = 0;
    for task in &plan.tasks {
        assert!(
            task.line > previous && task.line <= lines.len(),
            "task on line {} (after line {previous}, of {})",
            task.line,
            lines.len()
        );
        previous = task.line;
        let source = lines[task.line - 1];
        assert!(
            source.contains(task.text.as_str()),
            "line {} does not hold the task's text {:?}: {source:?}",
            task.line,
            task.text
        );
        assert_eq!(
            task.text.trim(),
            task.text,
            "the task's text is not trimmed"
        );
        if let Some(section) = &task.section {
            assert_eq!(section.trim(), section, "the section title is not trimmed");
        }
        assert!(!(task.optional && task.blocking), "an optional task blocks");
    }

    let pending = |task: &&loop_core::plan::Task| task.state == TaskState::Pending;
    let expected = plan
        .tasks
        .iter()
        .filter(|task| task.blocking)
        .find(pending)
        .or_else(|| plan.tasks.iter().filter(|task| task.optional).find(pending));
    match plan.next_task() {
        Some(next) => {
            assert_eq!(
                next.state,
                TaskState::Pending,
                "the next task is not pending"
            );
            assert_eq!(
                Some(next),
                expected,
                "the next task is not the first pending one"
            );
        }
        None => assert_eq!(expected, None, "a task is pending but none is next"),
    }

    let with_newline = format!("{text}\n");
    assert_eq!(
        Plan::parse(&with_newline),
        plan,
        "a trailing newline changes the plan\ntext: {text:?}"
    );
    plan
}

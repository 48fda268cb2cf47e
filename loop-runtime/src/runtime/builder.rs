//! [`RuntimeBuilder`]: the log, the data dir, the clock, the adapters and the limits a
//! [`Runtime`] starts with.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use loop_core::event::Provider;
use loop_store::EventStore;

use super::Runtime;
use crate::accounts::Accounts;
use crate::agent::{Agent, ClaudeAgent, CodexAgent, CommandAgent, DemoAgent};
use crate::clock::{Clock, SystemClock};
use crate::cluster::{Membership, Node};
use crate::error::RuntimeError;
use crate::journal::{Journal, Observer};
use crate::notify::Notifier;
use crate::pauses::PauseRequests;
use crate::postmortem::Postmortems;
use crate::scheduler::{Claim, Limits, QueuePolicy, Scheduler};
use crate::services::Services;
use crate::stream::Streams;
use crate::worktree::{GitWorktrees, InPlace, WorktreeProvider, Worktrunk};

/// Builds a [`Runtime`].
pub struct RuntimeBuilder {
    store: Option<Arc<dyn EventStore>>,
    data_dir: Option<PathBuf>,
    clock: Arc<dyn Clock>,
    agents: HashMap<String, Arc<dyn Agent>>,
    providers: HashMap<Provider, Arc<dyn WorktreeProvider>>,
    limits: Limits,
    node: Option<Node>,
    accounts: Vec<crate::accounts::DeclaredAccount>,
}

impl std::fmt::Debug for RuntimeBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RuntimeBuilder")
            .field("data_dir", &self.data_dir)
            .finish_non_exhaustive()
    }
}

impl RuntimeBuilder {
    /// The built-in adapters (`claude`, `codex`, `command`, `demo`) and worktree providers
    /// (`git`, `worktrunk`, `none`), 3 runs at once, 1 per workspace, FIFO, claiming all.
    pub(super) fn new() -> RuntimeBuilder {
        let mut agents: HashMap<String, Arc<dyn Agent>> = HashMap::new();
        agents.insert("command".to_owned(), Arc::new(CommandAgent));
        agents.insert("claude".to_owned(), Arc::new(ClaudeAgent));
        agents.insert("codex".to_owned(), Arc::new(CodexAgent::default()));
        agents.insert(
            "demo".to_owned(),
            Arc::new(DemoAgent::new(std::time::Duration::from_millis(40))),
        );
        let mut providers: HashMap<Provider, Arc<dyn WorktreeProvider>> = HashMap::new();
        providers.insert(Provider::InPlace, Arc::new(InPlace));
        providers.insert(Provider::Git, Arc::new(GitWorktrees));
        providers.insert(Provider::Worktrunk, Arc::new(Worktrunk));
        RuntimeBuilder {
            store: None,
            data_dir: None,
            clock: Arc::new(SystemClock),
            agents,
            providers,
            limits: Limits {
                max_concurrency: 3,
                max_per_workspace: 1,
                queue_policy: QueuePolicy::Fifo,
                claim: Claim::All,
            },
            node: None,
            accounts: Vec::new(),
        }
    }

    /// The accounts runs may name in `account` or `account_pool`, with the environment their
    /// calls run with (`loopd --accounts`).
    pub fn accounts(mut self, accounts: Vec<crate::accounts::DeclaredAccount>) -> Self {
        self.accounts = accounts;
        self
    }

    /// The price table Codex's tokens are estimated by, instead of the shipped one (`loopd
    /// --prices`: the shipped table with the daemon's file over it).
    pub fn prices(self, prices: loop_core::prices::PriceTable) -> Self {
        self.agent("codex", Arc::new(CodexAgent::priced(prices)))
    }

    /// The event log (required).
    pub fn store(mut self, store: Arc<dyn EventStore>) -> Self {
        self.store = Some(store);
        self
    }

    /// Where the global artifact mirror goes when `global_log_dir` is unset (required).
    pub fn data_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.data_dir = Some(dir.into());
        self
    }

    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// Adds or replaces the agent adapter chosen by `agent=<name>`.
    pub fn agent(mut self, name: &str, agent: Arc<dyn Agent>) -> Self {
        self.agents.insert(name.to_owned(), agent);
        self
    }

    /// Adds or replaces the provider chosen by `worktree_provider=<name>`.
    pub fn worktree_provider(mut self, provider: Arc<dyn WorktreeProvider>) -> Self {
        self.providers.insert(provider.name(), provider);
        self
    }

    pub fn max_concurrency(mut self, n: usize) -> Self {
        self.limits.max_concurrency = n.max(1);
        self
    }

    pub fn max_runs_per_workspace(mut self, n: usize) -> Self {
        self.limits.max_per_workspace = n.max(1);
        self
    }

    pub fn queue_policy(mut self, policy: QueuePolicy) -> Self {
        self.limits.queue_policy = policy;
        self
    }

    /// Which runs the scheduler drives (default: all).
    pub fn claim(mut self, claim: Claim) -> Self {
        self.limits.claim = claim;
        self
    }

    /// Makes this runtime one node of a cluster sharing the log: it claims each run it drives,
    /// beats, and leaves runs other live nodes drive alone (see [`Node`]).
    pub fn node(mut self, node: Node) -> Self {
        self.node = Some(node);
        self
    }

    /// Starts the runtime: recovers runs the log shows RUNNING and starts the scheduler. Must be
    /// called inside a tokio runtime.
    pub fn build(self) -> Result<Runtime, RuntimeError> {
        let missing = |what: &str| RuntimeError::InvalidRequest {
            what: "runtime".to_owned(),
            reason: format!("{what} is required"),
        };
        let store = self.store.ok_or_else(|| missing("a store"))?;
        let data_dir = self.data_dir.ok_or_else(|| missing("a data dir"))?;
        // The subsystems that follow the log observe the journal: the accounts first (a run
        // that checks right after another's append sees it), then the event streams.
        let accounts = Arc::new(Accounts::default());
        let streams = Arc::new(Streams::new(self.node.is_some()));
        let pauses = Arc::new(PauseRequests::default());
        let observers: Vec<Arc<dyn Observer>> = vec![
            Arc::clone(&accounts) as Arc<dyn Observer>,
            Arc::clone(&streams) as Arc<dyn Observer>,
            Arc::clone(&pauses) as Arc<dyn Observer>,
        ];
        let node_id = self.node.as_ref().map(|node| node.id.as_str());
        let journal = Journal::new(
            Arc::clone(&store),
            Arc::clone(&self.clock),
            observers,
            node_id,
        );
        let membership = self.node.map(|node| {
            Arc::new(Membership::new(
                node,
                journal.clone(),
                Arc::clone(&store),
                data_dir.clone(),
            ))
        });
        let services = Arc::new(Services::new(
            journal,
            self.clock,
            data_dir,
            self.agents,
            self.providers,
            pauses,
        ));
        accounts.declare(self.accounts);
        // The accounts' fold of the log, from its start (see `accounts.rs`). Caught up at the
        // log's last seq as first read: a store that cannot be reached now (a daemon started
        // while its PostgreSQL server is down) is waited for, not a reason to fail the start.
        let caught_up_at = {
            let (journal, shutdown) = (services.journal.clone(), services.shutdown.clone());
            async move {
                crate::journal::patiently(&shutdown, std::time::Duration::from_secs(1), || {
                    journal.read(|store| store.last_seq())
                })
                .await
            }
        };
        let stream = streams.open(&services.journal, None, loop_core::Seq(0));
        tokio::spawn(Arc::clone(&accounts).follow(stream, caught_up_at, services.shutdown.clone()));
        let postmortems = Arc::new(Postmortems::new(
            Arc::clone(&services),
            Arc::clone(&accounts),
        ));
        if self.limits.claim == Claim::All {
            let started_ms = services.clock.now_ms();
            tokio::spawn(Arc::clone(&postmortems).recover(started_ms));
        }
        let notifier = Arc::new(if self.limits.claim == Claim::Nothing {
            Notifier::idle()
        } else {
            Notifier::start(Arc::clone(&services), streams.appended())
        });
        let scheduler = Arc::new(Scheduler::new(
            Arc::clone(&services),
            Arc::clone(&postmortems),
            Arc::clone(&accounts),
            membership.clone(),
            self.limits,
        ));
        let task = tokio::spawn(Arc::clone(&scheduler).run());
        if let Some(membership) = &membership {
            tokio::spawn(crate::cluster::serve(
                Arc::clone(membership),
                Arc::clone(&scheduler),
                services.shutdown.clone(),
            ));
        }
        Ok(Runtime {
            services,
            scheduler,
            postmortems,
            accounts,
            streams,
            membership,
            notifier,
            scheduler_task: Arc::new(Mutex::new(Some(task))),
        })
    }
}

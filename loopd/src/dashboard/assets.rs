//! The dashboard's static files (`ui/`), compiled into the binary: the stylesheet, the login
//! script and the page's ES modules, served under `/ui/<name>` as they are (no build step;
//! the browser resolves the modules' `import`s against the same route).

/// One embedded file: its name under `/ui/` and its bytes.
pub(super) struct Asset {
    pub name: &'static str,
    pub body: &'static str,
}

impl Asset {
    /// The media type: only stylesheets and scripts are embedded.
    pub fn kind(&self) -> &'static str {
        if self.name.ends_with(".css") {
            "text/css; charset=utf-8"
        } else {
            "text/javascript; charset=utf-8"
        }
    }
}

macro_rules! assets {
    ($($name:literal),+ $(,)?) => {
        &[$(Asset { name: $name, body: include_str!(concat!("ui/", $name)) },)+]
    };
}

/// Every file under `/ui/`. A module the page imports must be listed here, or it is a 404
/// (the browser test of every page would show it).
const ASSETS: &[Asset] = assets![
    "app.css",
    "login.js",
    "app.js",
    "api.js",
    "sse.js",
    "dom.js",
    "board.js",
    "accounts.js",
    "needs.js",
    "run.js",
    "output.js",
    "log.js",
    "plan.js",
    "verification.js",
    "timeline.js",
    "spans.js",
    "review.js",
    "diff.js",
    "comments.js",
    "filetree.js",
    "merge.js",
    "highlight.js",
    "postmortem.js",
    "experiment.js",
    "new-run.js",
    "insight.js",
];

/// The embedded file called `name`, if there is one.
pub(super) fn find(name: &str) -> Option<&'static Asset> {
    ASSETS.iter().find(|asset| asset.name == name)
}

//! The consent policy of the large `local-embeddings` feature (PyTorch and a model, gigabytes):
//! it is never installed silently with `core`. A command that needs it calls [`ensure`] before
//! its first call: on a runtime without the feature that asks separately, saying how much will
//! be downloaded, unless `--yes` (install, saying the size) or `--no-input` / no terminal (an
//! [`ErrorKind::Refused`] error naming the exact install command).

use std::io::IsTerminal;
use std::path::Path;

use ktx_runtime::{ErrorKind, Feature, Runtime, RuntimeError, StatusKind};

use crate::{ask, CallOptions, Policy, RunError, LOCAL_EMBEDDINGS_SIZE as FEATURE_SIZE};

/// The exact command that installs the feature (named by every refusal).
pub const INSTALL_COMMAND: &str = "ktx runtime install --feature local-embeddings --yes";

/// Prepares `opts` for calls that need the `local-embeddings` feature: the features, the
/// daemon preferred (it loads the model once instead of once per command) unless
/// `KTX_DAEMON` says otherwise, and consent to the install per `opts.policy`, with a prompt of
/// its own naming `command` (e.g. `ktx embed`). On acceptance the policy becomes
/// [`Policy::Yes`] so the runner installs without asking again; the install itself happens in
/// the call.
pub fn ensure(rt: &Runtime, opts: &mut CallOptions, command: &str) -> Result<(), RunError> {
    opts.features = vec![Feature::Core, Feature::LocalEmbeddings];
    if std::env::var_os("KTX_DAEMON").is_none() {
        opts.daemon = true;
    }
    let st = rt.status(&[Feature::Core, Feature::LocalEmbeddings]);
    if st.kind == StatusKind::Ready {
        return Ok(());
    }
    let core_ready = rt.status(&[Feature::Core]).kind == StatusKind::Ready;
    match opts.policy {
        Policy::Yes => {
            eprintln!("Installing the local-embeddings feature: {FEATURE_SIZE}.");
            Ok(())
        }
        Policy::NoInput => Err(not_installed(&st.detail, core_ready, false)),
        Policy::Prompt => {
            let question = prompt_text(command, core_ready, &rt.layout().version_dir());
            // `ask` never holds the stderr lock while it waits: Ctrl-C must end ktx here.
            let answer = ask(&question).map_err(|e| {
                RunError::Transport(format!("cannot read the answer from the terminal: {e}"))
            })?;
            if !accepts(answer.as_deref()) {
                return Err(not_installed(&st.detail, core_ready, true));
            }
            opts.policy = Policy::Yes;
            Ok(())
        }
    }
}

fn prompt_text(command: &str, core_ready: bool, version_dir: &Path) -> String {
    let have = if core_ready {
        "Your KTX Python runtime has only the `core` feature."
    } else {
        "The KTX Python runtime is not installed yet."
    };
    format!(
        "`{command}` needs the local-embeddings feature of the KTX Python runtime. {have}\n\
         It installs sentence-transformers, PyTorch and the all-MiniLM-L6-v2 model into\n\
         {}: {FEATURE_SIZE}.\n\
         Install it now? [y/N] ",
        version_dir.display()
    )
}

/// Whether the answer line accepts: only `y` / `yes` (any case); end of input never does.
fn accepts(line: Option<&str>) -> bool {
    let answer = line.unwrap_or_default().trim().to_ascii_lowercase();
    answer == "y" || answer == "yes"
}

fn not_installed(detail: &str, core_ready: bool, declined: bool) -> RunError {
    let what = if core_ready {
        "the KTX Python runtime is installed without the local-embeddings feature".to_string()
    } else {
        format!(
            "the KTX Python runtime with the local-embeddings feature is not installed ({detail})"
        )
    };
    let hint = if declined {
        format!("Install it when you are ready with `{INSTALL_COMMAND}` ({FEATURE_SIZE}).")
    } else {
        let terminal = std::io::stdin().is_terminal() && std::io::stderr().is_terminal();
        let why = if terminal {
            ""
        } else {
            " (no terminal to ask on)"
        };
        format!(
            "Run `{INSTALL_COMMAND}` to install it ({FEATURE_SIZE}), or re-run this command with --yes{why}."
        )
    };
    RunError::Runtime(RuntimeError::new(ErrorKind::Refused, what).with_hint(hint))
}

/// The fix to add to an op-level `feature_missing` error (a receipt that claims the feature
/// but cannot import it): the op names the install command; when the feature should already
/// be there, rebuilding is the fix. `None` for every other error.
pub fn rebuild_hint(err: &RunError) -> Option<String> {
    match err {
        RunError::Abi { code, .. } if code == "feature_missing" => Some(format!(
            "if the feature should be there, rebuild the runtime with `{INSTALL_COMMAND} --force`."
        )),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_an_explicit_yes_accepts_the_big_download() {
        for (answer, want) in [
            (Some("y\n"), true),
            (Some("YES\n"), true),
            (Some("\n"), false),
            (Some("n\n"), false),
            (None, false),
            (Some("sure\n"), false),
        ] {
            assert_eq!(accepts(answer), want, "answer {answer:?}");
        }
    }

    #[test]
    fn prompt_says_what_and_how_much() {
        let text = prompt_text("ktx embed", true, Path::new("/r/0.1.0"));
        assert!(
            text.starts_with("`ktx embed` needs the local-embeddings"),
            "{text}"
        );
        assert!(text.contains("only the `core` feature"), "{text}");
        assert!(
            text.contains("3 GB to download") && text.contains("/r/0.1.0"),
            "{text}"
        );
        assert!(text.ends_with("[y/N] "));
        assert!(prompt_text("ktx embed", false, Path::new("/r")).contains("not installed yet"));
    }

    #[test]
    fn refusals_are_refused_errors_naming_the_install_command() {
        let e = not_installed("nothing installed", false, false);
        assert_eq!(e.exit_code(), 1);
        assert!(
            matches!(&e, RunError::Runtime(r) if r.kind == ErrorKind::Refused),
            "{e:?}"
        );
        let text = e.to_string();
        assert!(
            text.contains("`ktx runtime install --feature local-embeddings --yes`"),
            "{text}"
        );
        let text = not_installed("", true, true).to_string();
        assert!(
            text.contains(
                "without the local-embeddings feature\n  hint: Install it when you are ready"
            ),
            "{text}"
        );
        assert!(text.contains(INSTALL_COMMAND));
    }
}

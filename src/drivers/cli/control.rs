//! `alchemiser halt` and `resume`: requests left for the engine, and the engine's
//! acknowledgement waited for. They say only what they can check: that a running engine
//! took the request, or that none is running and the request waits for its next start.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use crate::actors::control::{ControlFiles, RunFile};

use super::error::CliError;
use super::load_config;

/// How long a request waits for a running engine to take it (it looks twice a second).
const ACKNOWLEDGE_WITHIN: Duration = Duration::from_secs(2);

/// Leaves a halt (`reason` given) or resume request for the engine and waits for a
/// running one to acknowledge it.
pub(super) fn control_request(
    config: Option<PathBuf>,
    halt_reason: Option<String>,
) -> Result<(), CliError> {
    let config = load_config(config.as_ref())?;
    let dir = config.resolve(&config.engine.control_dir);
    let files = ControlFiles::new(dir.clone());
    let what = if halt_reason.is_some() {
        "halt"
    } else {
        "resume"
    };
    let withdrawn =
        halt_reason.is_none() && files.pending().is_some_and(|(what, _)| what == "halt");
    let written = match &halt_reason {
        Some(reason) => files.request_halt(reason),
        None => files.request_resume("alchemiser resume"),
    };
    let request = written.map_err(CliError::input)?;
    let shown = std::path::absolute(&dir).unwrap_or(dir);
    let Some(engine) = RunFile::running(&shown) else {
        if withdrawn {
            outln!(
                "no engine is running with control dir {}: the pending halt request is withdrawn (a halt already in the journal is lifted at its next start)",
                shown.display()
            );
        } else {
            outln!(
                "no engine is running with control dir {}: the {what} applies at its next start",
                shown.display()
            );
        }
        return Ok(());
    };
    let deadline = Instant::now() + ACKNOWLEDGE_WITHIN;
    while request.exists() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    let done = if halt_reason.is_some() {
        "halted"
    } else {
        "resumed"
    };
    if request.exists() {
        return Err(CliError::failed(format!(
            "engine pid {} (control dir {}) did not acknowledge the {what} within {} s; the request stays in {} and applies when the engine reads it",
            engine.pid,
            shown.display(),
            ACKNOWLEDGE_WITHIN.as_secs(),
            request.display()
        )));
    }
    outln!("{done} (engine pid {} acknowledged)", engine.pid);
    Ok(())
}

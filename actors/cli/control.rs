//! `alchemiser halt` and `resume`: requests left for the engine.

use std::path::PathBuf;
use std::process::ExitCode;

use super::super::control::ControlFiles;

use super::load_config;

/// Leaves a halt (`reason` given) or resume request for the engine.
pub(super) fn control_request(config: Option<PathBuf>, halt_reason: Option<String>) -> ExitCode {
    let config = match load_config(config.as_ref()) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let files = ControlFiles::new(config.resolve(&config.engine.control_dir));
    let written = match &halt_reason {
        Some(reason) => files.request_halt(reason),
        None => files.request_resume("alchemiser resume"),
    };
    match written {
        Ok(path) => {
            let what = if halt_reason.is_some() {
                "halt"
            } else {
                "resume"
            };
            println!(
                "{what} requested ({}): a running engine applies it within a second, a stopped one at its next start",
                path.display()
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(2)
        }
    }
}

//! How a command ends badly. Every subcommand returns `Result<(), CliError>`; the
//! message is printed and the exit code chosen in one place ([`CliError::report`]).

use std::process::ExitCode;

/// Why a command failed, with what people read.
#[derive(Debug)]
pub enum CliError {
    /// Bad input the operator must fix — a config, a flag, a file, a journal that
    /// cannot be used, a check that refuses to trade blind: exit 2.
    Input(String),
    /// The command ran and its outcome is a failure (a workflow that did not complete,
    /// a journal that does not verify, a service that cannot be reached): exit 1.
    Failed(String),
    /// A failure already shown (a report with its own error lines): exit 1, nothing
    /// more printed.
    Reported,
}

impl CliError {
    /// Bad input: exit 2.
    pub fn input(message: impl std::fmt::Display) -> Self {
        CliError::Input(message.to_string())
    }

    /// A failed outcome: exit 1.
    pub fn failed(message: impl std::fmt::Display) -> Self {
        CliError::Failed(message.to_string())
    }

    pub fn exit_code(&self) -> ExitCode {
        match self {
            CliError::Input(_) => ExitCode::from(2),
            CliError::Failed(_) | CliError::Reported => ExitCode::FAILURE,
        }
    }

    /// Prints the message (as `error: …` on standard error) and gives the exit code.
    pub fn report(self) -> ExitCode {
        match &self {
            CliError::Input(m) | CliError::Failed(m) => eprintln!("error: {m}"),
            CliError::Reported => {}
        }
        self.exit_code()
    }
}

/// A command's result as the process ends with it.
pub fn exit(result: Result<(), CliError>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => e.report(),
    }
}

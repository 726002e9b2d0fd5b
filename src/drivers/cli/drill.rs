//! `alchemiser drill`: the recovery drills, one JSON report per line.

use super::error::CliError;

pub(super) fn drill(scenario: &str, seed: u64, iterations: u32) -> Result<(), CliError> {
    // Injected panics are the point of a drill: one log line each, not a backtrace.
    std::panic::set_hook(Box::new(|info| {
        tracing::debug!(panic = %info, "panic (caught at the handler boundary)");
    }));
    let printed =
        super::super::drill::run(
            scenario,
            seed,
            iterations,
            |report| match serde_json::to_string(report) {
                Ok(line) => outln!("{line}"),
                Err(e) => eprintln!("error: cannot print a drill report: {e}"),
            },
        );
    match printed {
        Ok(reports) if reports.iter().all(|r| r.passed) => Ok(()),
        Ok(reports) => {
            for r in reports.iter().filter(|r| !r.passed) {
                let failed: Vec<&str> = r
                    .checks
                    .iter()
                    .filter(|c| !c.passed)
                    .map(|c| c.name.as_str())
                    .collect();
                eprintln!(
                    "drill {} (seed {}, iteration {}) failed: duplicates {}, lost events {}, checks failed: {}",
                    r.scenario,
                    r.seed,
                    r.iteration,
                    r.duplicate_orders,
                    r.lost_events,
                    failed.join(", ")
                );
            }
            Err(CliError::Reported)
        }
        Err(e) => Err(CliError::input(e)),
    }
}

//! Peak resident memory of the running process, for the benchmarks' memory figures
//! (included by each benchmark through `#[path]`).

/// Peak resident memory of this process in MiB (VmHWM; 0 where /proc is absent).
pub fn peak_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|kb| kb.parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}

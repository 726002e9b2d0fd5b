fn main() -> std::process::ExitCode {
    alchemiser::actors::cli::main()
}

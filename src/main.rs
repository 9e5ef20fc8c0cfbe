//! The `zclab` command line: parse, validate once, run, report.

mod cli;

use clap::Parser;
use std::process::ExitCode;

fn main() -> ExitCode {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn")).format_timestamp_millis().init();
    zclab::interrupt::install();
    let cli = cli::Cli::parse();
    match cli::dispatch(cli) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) => {
            // A signal can wake a syscall (EINTR) a moment before the Ctrl-C
            // handler's thread has set its flag: give it that moment.
            if e.chain()
                .any(|c| c.downcast_ref::<std::io::Error>().is_some_and(|io| io.kind() == std::io::ErrorKind::Interrupted))
            {
                std::thread::sleep(std::time::Duration::from_millis(50));
            }
            if zclab::interrupt::requested() {
                eprintln!("zclab: interrupted; cleaned up");
                return ExitCode::from(130);
            }
            if e.chain().any(|c| {
                c.downcast_ref::<std::io::Error>().is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
                    && c.to_string().contains("stdout")
            }) {
                return ExitCode::SUCCESS;
            }
            eprintln!("zclab: error: {e:#}");
            ExitCode::from(1)
        }
    }
}

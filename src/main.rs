//! The `jupyter-mcp-server` binary: parse configuration, set up logging, serve, map errors to an
//! exit code. Everything else lives in the library.

use std::process::ExitCode;
use std::time::Instant;

use clap::Parser;
use jupyter_mcp_server::config::{Command, Config, Transport};

fn main() -> ExitCode {
    let started = Instant::now();
    let config = Config::parse();
    if let Some(Command::HashKey) = config.command {
        return hash_key();
    }
    init_logging(config.lambda_runtime_api.is_some());
    match run(config, started) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e:#}");
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Readable text on a terminal; JSON on Lambda, where CloudWatch stores one record per line and
/// each line of an invocation carries its request id (from the runtime's span).
fn init_logging(lambda: bool) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| "info,rmcp=warn".into());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    if lambda {
        builder
            .json()
            .with_current_span(true)
            .with_span_list(false)
            .without_time()
            .init();
    } else {
        builder.init();
    }
}

/// `jupyter-mcp-server hash-key`: a key from stdin (or a new one) and its digest, on stdout.
fn hash_key() -> ExitCode {
    use std::io::{IsTerminal, Read, Write};
    let mut input = String::new();
    let stdin = std::io::stdin();
    if !stdin.is_terminal() && stdin.lock().read_to_string(&mut input).is_err() {
        eprintln!("error: cannot read the key from stdin");
        return ExitCode::FAILURE;
    }
    let report = jupyter_mcp_server::auth::hash_key_report(Some(&input));
    match std::io::stdout().write_all(report.as_bytes()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(_) => ExitCode::FAILURE,
    }
}

fn run(config: Config, started: Instant) -> anyhow::Result<()> {
    let settings = config.resolve()?;
    let runtime = tokio::runtime::Runtime::new()?;
    let shutdown = jupyter_mcp_server::shutdown_signal();
    let result = match (settings.lambda.clone(), settings.transport) {
        (Some(lambda), _) => {
            runtime.block_on(jupyter_mcp_server::lambda::run(settings, lambda, started))
        }
        (None, Transport::Stdio) => {
            runtime.block_on(jupyter_mcp_server::run_stdio(settings, shutdown))
        }
        (None, Transport::Http) => runtime.block_on(jupyter_mcp_server::run(settings, shutdown)),
    };
    // A read of stdin may still sit in a blocking thread; do not wait for it to exit.
    runtime.shutdown_timeout(std::time::Duration::from_secs(1));
    Ok(result?)
}

//! The `jupyter-mcp-server` binary: parse configuration, set up logging, serve, map errors to an
//! exit code. Everything else lives in the library.

use std::process::ExitCode;

use clap::Parser;
use jupyter_mcp_server::config::Config;

fn main() -> ExitCode {
    let config = Config::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,rmcp=warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    match run(config) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e:#}");
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(config: Config) -> anyhow::Result<()> {
    let settings = config.resolve()?;
    let hardened = jupyter_mcp_server::security::harden_server_process();
    tracing::info!(layers = ?hardened, "process hardening");
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(jupyter_mcp_server::run(
        settings,
        jupyter_mcp_server::shutdown_signal(),
    ))?;
    Ok(())
}

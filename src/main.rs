//! The `chatwire` binary: parse flags, init tracing, bind, serve until a signal.
use std::{net::SocketAddr, process::ExitCode};

use chatwire::{
    cli::{self, Cli, Command, LogFormat, ServeArgs},
    config::{Config, TlsFiles},
    server,
};

/// mimalloc instead of the system's malloc: see README, "Allocator".
#[cfg(feature = "mimalloc")]
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = Cli::parse_command_line();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(cli.worker_threads())
        .enable_all()
        .build();
    match runtime {
        Ok(runtime) => runtime.block_on(run(cli)),
        Err(e) => {
            eprintln!("cannot start the async runtime: {e}");
            ExitCode::from(1)
        }
    }
}

async fn run(cli: Cli) -> ExitCode {
    match cli.command {
        None => serve(cli.serve).await,
        Some(Command::Serve(args)) => serve(args).await,
        Some(Command::CheckConfig { file }) => match Config::from_file(&file) {
            Ok(c) => {
                println!(
                    "{}: ok ({} aliases, {} model switches, {} providers configured in the file)",
                    file.display(),
                    c.aliases.len(),
                    c.model_options.len(),
                    c.providers.len()
                );
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("{e}");
                ExitCode::from(1)
            }
        },
        Some(cmd) => match cli::client(cmd).await {
            Ok(0) => ExitCode::SUCCESS,
            Ok(code) => ExitCode::from(u8::try_from(code).unwrap_or(1)),
            Err(e) => {
                eprintln!("error: {e}");
                ExitCode::from(1)
            }
        },
    }
}

async fn serve(args: ServeArgs) -> ExitCode {
    let mut config = match &args.config {
        Some(path) => match Config::from_file(path) {
            Ok(c) => c,
            Err(e) => {
                eprintln!("{e}");
                return ExitCode::from(2);
            }
        },
        None => Config::default(),
    };
    if let Some(addr) = &args.addr {
        match addr.parse::<SocketAddr>() {
            Ok(a) => config.addr = a,
            Err(e) => {
                eprintln!("--addr: {addr:?} is not host:port ({e})");
                return ExitCode::from(2);
            }
        }
    }
    if let Some(addr) = &args.metrics_addr {
        match addr.parse::<SocketAddr>() {
            Ok(a) => config.metrics_addr = Some(a),
            Err(e) => {
                eprintln!("--metrics-addr: {addr:?} is not host:port ({e})");
                return ExitCode::from(2);
            }
        }
    }
    if let Some(f) = args.log_format {
        config.json_logs = matches!(f, LogFormat::Json);
    }
    if let (Some(cert), Some(key)) = (args.tls_cert, args.tls_key) {
        config.tls = Some(TlsFiles {
            cert,
            key,
            client_ca: args.tls_client_ca,
        });
    }
    config.insecure_no_auth |= args.insecure_no_auth;
    if let Some(ca) = args.upstream_ca {
        config.upstream_ca = Some(ca);
    }
    if let Some(addr) = &args.health_addr {
        match addr.parse::<SocketAddr>() {
            Ok(a) => config.health_addr = Some(a),
            Err(e) => {
                eprintln!("--health-addr: {addr:?} is not host:port ({e})");
                return ExitCode::from(2);
            }
        }
    }
    if !args.cors_origins.is_empty() {
        config.cors_origins.clear();
        for o in &args.cors_origins {
            match chatwire::config::check_origin(o) {
                Ok(o) => config.cors_origins.push(o),
                Err(e) => {
                    eprintln!("--cors-origin: {e}");
                    return ExitCode::from(2);
                }
            }
        }
    }
    config.playground |= args.playground;
    init_tracing(config.json_logs);
    let env: server::Env = std::env::vars().collect();
    if let Err(e) = config
        .resolve_auth(&env)
        .and_then(|()| config.check_exposure())
    {
        tracing::error!("{e}");
        return ExitCode::from(2);
    }

    // A deep backlog: a burst of new connections waits in the kernel, not refused.
    let listener = match server::listen::bind(config.addr, server::listen::DEFAULT_BACKLOG) {
        Ok(l) => l,
        Err(e) => {
            tracing::error!(addr = %config.addr, error = %e, "cannot listen");
            return ExitCode::from(1);
        }
    };
    match server::run(config, env, listener, shutdown_signal()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %e, "server failed");
            ExitCode::from(1)
        }
    }
}

fn init_tracing(json: bool) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    if json {
        builder.json().init();
    } else {
        builder.init();
    }
}

/// Ctrl-C or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = term => {}
    }
    tracing::info!("signal received");
}

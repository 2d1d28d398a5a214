//! The Lambda front door: the same router as locally, served through `lambda_http`.
//!
//! Each invocation is one MCP HTTP request (Function URL, or API Gateway REST / HTTP API). The
//! pool and its warm spare are built in the init phase, before the first invocation is polled,
//! so a cold start pays Python's start-up there rather than in the first call (where the first
//! caller is known: `local`, without credentials; otherwise the first call starts its kernel,
//! as a spare is bound to its principal). Warm invocations
//! reuse the pool, and with it every kernel's state.

use std::sync::Arc;
use std::time::{Duration, Instant};

use lambda_http::request::LambdaRequest;
use lambda_runtime::{FunctionResponse, LambdaEvent};
use tokio_util::sync::CancellationToken;
use tower::Service;

use crate::app::App;
use crate::app::Error;
use crate::app::build_app;
use crate::config::{LambdaSettings, Settings};
use crate::http;
use crate::kernel::RuntimeRoot;

mod runtime_socket;
use runtime_socket::{NoDelay, RuntimeSocket};

/// How long init waits for the warm spare (Lambda allows 10 s of init).
const SPARE_WAIT: Duration = Duration::from_secs(8);

/// Serves invocations until the runtime stops. `started` is when the process began, for the
/// init-duration log line.
pub async fn run(
    settings: Settings,
    lambda: LambdaSettings,
    started: Instant,
) -> Result<(), Error> {
    let stop = CancellationToken::new();
    let (app, runtime) = build_app(&settings, stop.child_token())?;
    let spare_ready = app.service.pool.wait_spare_ready(SPARE_WAIT).await;
    let init_done = Instant::now();
    tracing::info!(
        init_ms = started.elapsed().as_millis() as u64,
        spare_ready,
        streaming = lambda.streaming,
        max_kernels = settings.max_kernels,
        "lambda init done"
    );

    on_shutdown(Arc::clone(&app), stop.clone(), runtime).await;
    // Where a cold start's time goes after init (bench/lambda_emulator.py reads these): the
    // extension registration above, then the wait for the first invocation.
    tracing::info!(
        extension_ms = init_done.elapsed().as_millis() as u64,
        "lambda shutdown extension registered"
    );

    let router = http::router(Arc::clone(&app), &settings, stop.child_token());
    // Around the whole router, not inside it: a layer inside runs after routing, too late to
    // change the path.
    let router = tower::ServiceBuilder::new()
        .map_request(strip_api_gateway_stage::<lambda_http::Body>)
        .service(router);
    // Stream where the caller can take a stream, buffer elsewhere: only a Function URL
    // (`InvokeMode: RESPONSE_STREAM`) unwraps a streamed response; API Gateway invokes the
    // function synchronously and would receive the raw stream framing.
    let buffered = lambda_http::Adapter::from(router.clone());
    let streamed = lambda_http::StreamAdapter::from(router);
    let streaming = lambda.streaming;
    // Read by lambda_runtime too; the connection it names carries each response.
    let runtime_api = std::env::var("AWS_LAMBDA_RUNTIME_API").unwrap_or_default();
    let runtime_socket = Arc::new(RuntimeSocket::new(&runtime_api));
    let last_nodelay = Arc::new(std::sync::Mutex::new(None));
    let first = std::sync::Once::new();
    let handler = lambda_runtime::service_fn(move |event: LambdaEvent<LambdaRequest>| {
        first.call_once(|| {
            tracing::info!(
                since_start_ms = started.elapsed().as_millis() as u64,
                since_init_ms = init_done.elapsed().as_millis() as u64,
                "lambda first invocation received"
            )
        });
        let stream = streaming && can_stream(&event.payload);
        if stream {
            log_nodelay_change(&last_nodelay, &runtime_socket);
        }
        let (mut buffered, mut streamed) = (buffered.clone(), streamed.clone());
        async move {
            if stream {
                streamed
                    .call(event)
                    .await
                    .map(FunctionResponse::StreamingResponse)
            } else {
                buffered
                    .call(event)
                    .await
                    .map(FunctionResponse::BufferedResponse)
            }
        }
    });
    let served = lambda_runtime::run(handler).await;
    stop.cancel();
    app.service.pool.shutdown().await;
    served.map_err(|e| Error::Lambda(e.to_string()))
}

/// Registers the shutdown hook. Lambda sends SIGTERM before it retires an environment (when an
/// extension is registered, which this does): stop the kernels then.
/// The runtime exits the process right after this hook, so no destructor runs later: the
/// kernels' runtime directory is removed here.
async fn on_shutdown(app: Arc<App>, stop: CancellationToken, runtime: RuntimeRoot) {
    lambda_runtime::spawn_graceful_shutdown_handler(move || async move {
        tracing::info!("lambda environment shutting down");
        stop.cancel();
        app.service.pool.shutdown().await;
        drop(runtime);
    })
    .await;
}

/// Logs the Runtime API connection's `TCP_NODELAY` state when it changes (the first streamed
/// invocation, and a connection that came or went), not on every call.
fn log_nodelay_change(last: &std::sync::Mutex<Option<NoDelay>>, socket: &RuntimeSocket) {
    let now = socket.ensure_nodelay();
    let Ok(mut last) = last.lock() else { return };
    if *last == Some(now) {
        return;
    }
    *last = Some(now);
    match now {
        NoDelay::Set(connections) => {
            tracing::info!(
                connections,
                "Runtime API connection: TCP_NODELAY set (read back)"
            )
        }
        NoDelay::NotFound => tracing::warn!(
            runtime_api = ?socket.peers(),
            "Runtime API connection not found: TCP_NODELAY not set, streamed responses may wait \
             ~40 ms for a delayed ACK"
        ),
    }
}

/// API Gateway puts a named stage in front of the path (`/Prod/mcp`); the router serves `/mcp`
/// whichever door a request came through, so the stage is taken off again here.
fn strip_api_gateway_stage<B>(mut request: axum::http::Request<B>) -> axum::http::Request<B> {
    use lambda_http::request::RequestContext;
    let stage = match request.extensions().get::<RequestContext>() {
        Some(RequestContext::ApiGatewayV1(c)) => c.stage.clone(),
        Some(RequestContext::ApiGatewayV2(c)) => c.stage.clone(),
        _ => None,
    };
    let Some(stage) = stage.filter(|s| s != "$default") else {
        return request;
    };
    let uri = request.uri();
    let Some(rest) = uri.path().strip_prefix(&format!("/{stage}")) else {
        return request;
    };
    let rest = if rest.is_empty() { "/" } else { rest };
    let path_and_query = match uri.query() {
        Some(q) => format!("{rest}?{q}"),
        None => rest.to_string(),
    };
    let mut parts = uri.clone().into_parts();
    if let Ok(pq) = path_and_query.parse() {
        parts.path_and_query = Some(pq);
        if let Ok(new_uri) = axum::http::Uri::from_parts(parts) {
            *request.uri_mut() = new_uri;
        }
    }
    request
}

/// True for events whose caller unwraps a streamed response: Function URLs (and the local
/// emulator's URLs). API Gateway's own domains and every non-HTTP-API event type get `false`.
/// An HTTP API on a custom domain looks like a Function URL here: deploy such a setup with
/// `JUPYTER_MCP_LAMBDA_STREAMING=false`.
fn can_stream(event: &LambdaRequest) -> bool {
    match event {
        LambdaRequest::ApiGatewayV2(e) => !e
            .request_context
            .domain_name
            .as_deref()
            .is_some_and(|d| d.contains(".execute-api.")),
        _ => false,
    }
}

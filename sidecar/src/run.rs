//! `sluice run`: the Fluent Forward input wired to an output.
//!
//! Settings come from the configuration (`--config FILE`, else the embedded
//! default) with `SLUICE_<SECTION>_<KEY>` overrides; see config.rs. The
//! outputs: stdout (one JSON object per event), files (one NDJSON file per
//! log group and stream) and CloudWatch Logs.

use std::path::Path;
use std::process::ExitCode;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sluice_firelens::{Counters, Delivery, Limits, MemoryBudget, Server, ServerConfig};
use tokio::sync::{mpsc, watch};
use tracing_subscriber::filter::LevelFilter;

use crate::admin::{self, Admin};
use crate::cli::{RunArgs, RunAs};
use crate::cloudwatch::client::{AssumeRole, ClientSettings, CloudWatchClient};
use crate::cloudwatch::ship::{GroupPolicies, GroupPolicy, ShipCounters, Shipper};
use crate::cloudwatch::sink::CloudWatchSink;
use crate::config::{self, Config, ForwardConfig, OutputType};
use crate::ecs::{Identity, TaskMetadata};
use crate::fluentbit::plan::{ForwardInput, InputKind};
use crate::fluentbit::plugin_metrics::{InputCounts, PluginMetrics};
use crate::fluentbit::route::Router;
use crate::fluentbit::{self, DropIn};
use crate::input_links::InputLinks;
use crate::log_counts;
use crate::memory_limit::{self, Note};
use crate::metrics::{PipelineCounters, Sources};
use crate::output::{FileSink, Sink};
use crate::privileges;
use crate::spool::{Spool, SpoolConfig, SpoolShared};
use crate::stage::{write_output, OutputStage, PIPELINE_FRAMES};
use crate::stats::RouteTotals;

pub fn run(args: RunArgs) -> ExitCode {
    let level = std::env::var("FLB_LOG_LEVEL").ok();
    let filter = level
        .as_deref()
        .map_or(Ok(LevelFilter::INFO), fluentbit::log_level);
    let level_handle = init_logging(*filter.as_ref().unwrap_or(&LevelFilter::INFO));
    if let Err(message) = filter {
        tracing::error!(key = "FLB_LOG_LEVEL", "{message}");
        return ExitCode::from(2);
    }
    let text = match &args.config {
        None => None,
        Some(path) => match std::fs::read_to_string(path) {
            Ok(t) => Some(t),
            Err(e) => {
                tracing::error!(path = %path.display(), error = %e, "cannot read the configuration");
                return ExitCode::from(2);
            }
        },
    };
    let config = match config::load(text.as_deref(), crate::config::environment()) {
        Ok(c) => c,
        Err(errors) => {
            for e in &errors {
                tracing::error!(key = %e.key, "{}", e.message);
            }
            return ExitCode::from(2);
        }
    };
    // Before listening: records that arrive are named with it, and a
    // FireLens configuration may name its variables. At most a few
    // seconds, and Sluice runs without it when it is not there.
    let identity = Identity::new(TaskMetadata::from_environment());
    let drop_in = match load_drop_in(&config, identity.task()) {
        Ok(d) => d,
        Err(()) => return ExitCode::from(2),
    };
    // `[SERVICE] Log_Level`, unless the container's FLB_LOG_LEVEL says.
    if let (Some(level), None, Some(handle)) = (
        drop_in.as_ref().and_then(|plan| plan.log_level),
        &level,
        &level_handle,
    ) {
        let _ = handle.reload(level);
    }
    if let Some(plan) = &drop_in {
        tracing::info!(path = %plan.path.display(), outputs = plan.outputs.len(), filters = plan.filters.len(), "FireLens drop-in mode: inputs, filters and outputs come from the Fluent Bit configuration");
        for note in &plan.notes {
            tracing::info!("{note}");
        }
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            tracing::error!(error = %e, "cannot start the async runtime");
            return ExitCode::FAILURE;
        }
    };
    let code = runtime.block_on(serve(config, drop_in, identity, args.user));
    // Do not wait for a stuck output past the grace.
    runtime.shutdown_timeout(Duration::from_millis(100));
    code
}

/// What each of a FireLens configuration's own inputs (tcp, tail, exec,
/// dummy) is started with.
struct InputWiring<'a> {
    pipeline: &'a mpsc::Sender<Delivery>,
    budget: &'a Arc<MemoryBudget>,
    shutdown: &'a watch::Receiver<bool>,
    metrics: Option<&'a PluginMetrics>,
}

impl InputWiring<'_> {
    /// The links of the input counted as `kind`.
    fn links(&self, kind: InputKind) -> InputLinks {
        InputLinks {
            pipeline: self.pipeline.clone(),
            budget: self.budget.clone(),
            shutdown: self.shutdown.clone(),
            counts: self.metrics.and_then(|m| m.input(kind)),
        }
    }

    /// Starts each of `inputs`, the `n`th counted as `kind(n)`.
    fn start<I>(
        &self,
        inputs: Vec<I>,
        kind: fn(usize) -> InputKind,
        spawn: fn(I, InputLinks) -> tokio::task::JoinHandle<()>,
    ) -> Vec<tokio::task::JoinHandle<()>> {
        inputs
            .into_iter()
            .enumerate()
            .map(|(i, input)| spawn(input, self.links(kind(i))))
            .collect()
    }
}

/// `shutdown.drain` and `shutdown.grace`; a FireLens configuration's
/// `[SERVICE] Grace` replaces the grace (as `HTTP_Server` replaces
/// `admin.listen`), and a drain as long as it shrinks to half of it, as
/// Fluent Bit's inputs take half its grace.
fn shutdown_times(full: &Config, drop_in: Option<&DropIn>) -> (Duration, Duration) {
    match drop_in.and_then(|d| d.grace) {
        Some(grace) => {
            let drain = if full.shutdown_drain < grace {
                full.shutdown_drain
            } else {
                grace / 2
            };
            tracing::info!(
                grace_ms = grace.as_millis() as u64,
                drain_ms = drain.as_millis() as u64,
                "the FireLens configuration's [SERVICE] Grace replaces shutdown.grace"
            );
            (drain, grace)
        }
        None => (full.shutdown_drain, full.shutdown_grace),
    }
}

/// Changes the level of Sluice's own logs after start.
type LevelHandle = tracing_subscriber::reload::Handle<LevelFilter, tracing_subscriber::Registry>;

fn init_logging(level: LevelFilter) -> Option<LevelHandle> {
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    // The sidecar's own logs: JSON lines on stderr, stdout is for events.
    let (filter, handle) = tracing_subscriber::reload::Layer::new(level);
    let fmt = tracing_subscriber::fmt::layer()
        .json()
        .with_writer(std::io::stderr)
        .with_current_span(false);
    tracing_subscriber::registry()
        .with(filter)
        .with(fmt)
        .with(log_counts::CountingLayer(&log_counts::LOG_COUNTS))
        .try_init()
        .ok()
        .map(|()| handle)
}

/// FireLens drop-in mode: the Fluent Bit configuration at
/// `firelens.config`, when that file exists. Errors are logged; `Err` means
/// exit 2.
fn load_drop_in(config: &Config, task: Option<&TaskMetadata>) -> Result<Option<DropIn>, ()> {
    let Some(path) = config.firelens_config.as_deref().filter(|p| p.exists()) else {
        return Ok(None);
    };
    match fluentbit::load_with(path, task, config.multiline.as_ref()) {
        Ok(plan) => Ok(Some(plan)),
        Err(errors) => {
            for e in &errors {
                tracing::error!(key = %e.key, path = %path.display(), "{}", e.message);
            }
            Err(())
        }
    }
}

fn server_config(
    forward: &ForwardConfig,
    drop_in: Option<&DropIn>,
    budget: Arc<MemoryBudget>,
) -> ServerConfig {
    let (mut tcp, mut unix) = (
        forward.listen,
        forward.unix_path.clone().map(|p| (p, forward.unix_mode)),
    );
    let mut shared_key = forward.shared_key.clone();
    let mut users = Vec::new();
    // The kernel's hostname, else "sluice".
    let mut self_hostname = crate::ecs::host_name().unwrap_or_else(|| "sluice".to_string());
    if let Some(plan) = drop_in {
        // The configuration's forward inputs replace the default listeners.
        tcp = None;
        unix = None;
        // At most one of each: the plan refuses more.
        for input in &plan.forward {
            match input {
                ForwardInput::Tcp(a) => tcp = Some(*a),
                ForwardInput::Unix(p) => {
                    unix = Some((p.clone(), plan.unix_perm.unwrap_or(forward.unix_mode)))
                }
            }
        }
        if plan.shared_key.is_some() {
            shared_key = plan.shared_key.clone();
        }
        users = plan.forward_users.clone();
        if let Some(name) = &plan.self_hostname {
            self_hostname = name.clone();
        }
    }
    ServerConfig {
        tcp,
        unix,
        max_connections: forward.max_connections,
        idle_timeout: forward.idle_timeout,
        limits: Limits::default(),
        shared_key,
        users,
        self_hostname,
        budget,
    }
}

/// The FireLens health check (`[INPUT] tcp`, port 8877): connections are
/// accepted, read to the end and discarded.
async fn serve_health_check(
    addr: std::net::SocketAddr,
    counts: Option<Arc<InputCounts>>,
) -> Result<(), ExitCode> {
    let listener = match tokio::net::TcpListener::bind(addr).await {
        Ok(l) => l,
        Err(e) => {
            tracing::error!(%addr, error = %e, "cannot listen for the FireLens health check ([INPUT] tcp)");
            return Err(ExitCode::FAILURE);
        }
    };
    tracing::info!(%addr, "FireLens health check input: accepted and discarded");
    let open = Arc::new(tokio::sync::Semaphore::new(16));
    tokio::spawn(async move {
        loop {
            let Ok(permit) = open.clone().acquire_owned().await else {
                return;
            };
            let Ok((mut socket, _)) = listener.accept().await else {
                continue;
            };
            let counts = counts.clone();
            tokio::spawn(async move {
                let read =
                    tokio::time::timeout(Duration::from_secs(10), read_a_line(&mut socket)).await;
                // Counted as Fluent Bit counts the check's record.
                if let (Some(counts), Ok(bytes)) = (counts, read) {
                    counts.add(usize::from(bytes > 0), bytes);
                }
                drop(permit);
            });
        }
    });
    Ok(())
}

/// Reads and discards up to the first newline or the end of input. The
/// connection is then closed: `echo '{"health": "check"}' | nc 127.0.0.1
/// 8877` exits with every netcat. OpenBSD's (Debian's `nc`) does not end
/// its side when its input ends, only when the other side closes.
async fn read_a_line(socket: &mut tokio::net::TcpStream) -> usize {
    use tokio::io::AsyncReadExt;
    let mut buf = [0u8; 1024];
    let mut read = 0;
    while let Ok(n) = socket.read(&mut buf).await {
        read += n;
        if n == 0 || buf[..n].contains(&b'\n') {
            break;
        }
    }
    read
}

/// The CloudWatch output's running parts, for the shutdown report.
struct CloudWatchRun {
    counters: Arc<ShipCounters>,
    shipper: tokio::task::JoinHandle<()>,
    spool: Option<Arc<SpoolShared>>,
}

async fn serve(
    full: Config,
    drop_in: Option<DropIn>,
    identity: Identity,
    run_as: Option<RunAs>,
) -> ExitCode {
    let started = std::time::Instant::now();
    // Before any listener is up: a client that sees one may stop Sluice.
    let mut signals = Signals::new();
    let budget = Arc::new(
        MemoryBudget::new(memory_budget(full.memory_limit))
            .with_heap_gauge(crate::heap::live_bytes),
    );
    let (drain, grace) = shutdown_times(&full, drop_in.as_ref());
    let config = server_config(&full.forward, drop_in.as_ref(), budget.clone());
    let policies = Arc::new(GroupPolicies::new(GroupPolicy {
        create_group: full.cloudwatch.auto_create,
        create_stream: full.cloudwatch.auto_create,
        retention_days: full
            .cloudwatch
            .retention_days
            .and_then(|d| i32::try_from(d).ok()),
        infrequent_access: false,
        tags: None,
    }));
    // Every listener is bound first: as root when the image starts so (see
    // `--user`), then everything else (the spool's files above all) as the
    // user it runs as. The health-check inputs before the forward
    // listeners, so that a client who sees those listening finds every
    // input up; the admin endpoint answers once the rest is built.
    let plugin_metrics = drop_in
        .as_ref()
        .map(|plan| Arc::new(PluginMetrics::new(plan)));
    let mut tcp_inputs = Vec::new();
    if let Some(plan) = &drop_in {
        for addr in &plan.health_checks {
            let counts = plugin_metrics
                .as_ref()
                .and_then(|m| m.input(InputKind::Tcp(*addr)));
            if let Err(code) = serve_health_check(*addr, counts).await {
                return code;
            }
        }
        for input in &plan.tcp_inputs {
            match crate::tcp_input::bind(input).await {
                Ok(listener) => {
                    tracing::info!(addr = %input.addr, tag = %input.tag, "[INPUT] tcp: listening");
                    tcp_inputs.push((listener, input.clone()));
                }
                Err(e) => {
                    tracing::error!(addr = %input.addr, error = %e, "cannot listen for [INPUT] tcp");
                    return ExitCode::FAILURE;
                }
            }
        }
    }
    let counters = Arc::new(Counters::default());
    if let Some(metrics) = &plugin_metrics {
        metrics.set_forward(counters.clone());
    }
    let server = match Server::bind(config.clone(), counters.clone()).await {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(error = %e, "cannot listen for fluent forward");
            return ExitCode::FAILURE;
        }
    };
    let tcp = server
        .tcp_addr()
        .map_or_else(|| "none".to_string(), |a| a.to_string());
    let unix = config
        .unix
        .as_ref()
        .map_or_else(|| "none".to_string(), |(p, _)| p.display().to_string());
    tracing::info!(%tcp, %unix, "listening for fluent forward");
    // A FireLens configuration's `[SERVICE] HTTP_Server` replaces
    // admin.listen, as its forward inputs replace forward.listen: the
    // task's health check asks Fluent Bit's port.
    let admin_listen = drop_in
        .as_ref()
        .and_then(|plan| plan.http_server)
        .or(full.admin_listen);
    let admin_listener = match admin_listen {
        Some(addr) => match bind_admin(addr).await {
            Ok(listener) => Some((addr, listener)),
            Err(code) => return code,
        },
        None => None,
    };
    if let Some(run_as) = run_as {
        if let Err(e) = privileges::switch_from_root(run_as) {
            tracing::error!(uid = run_as.uid, gid = run_as.gid, error = %e, "cannot switch to the --user");
            return ExitCode::FAILURE;
        }
    }
    let (sink, cloudwatch) = match build_sink(
        &full,
        drop_in.as_ref(),
        identity.task().and_then(TaskMetadata::region),
        policies.clone(),
        budget.clone(),
    )
    .await
    {
        Ok(built) => built,
        Err(code) => return code,
    };
    let pipeline_counters = Arc::new(PipelineCounters::default());
    let totals = Arc::new(Mutex::new(RouteTotals::default()));
    let mut full = full;
    if let (Some(plan), Some(multiline)) = (&drop_in, &mut full.multiline) {
        // A multiline filter's [MULTILINE_PARSER]s run in Sluice's joiner
        // (`load_with` refused them when the joiner is off).
        let named = plan
            .multiline_parsers
            .iter()
            .map(|(_, rules)| rules.clone());
        multiline.rules.state_rules.extend(named);
    }
    if let Some(plan) = &drop_in {
        // `[FILTER] aws`: the instance metadata is asked for before the
        // first record is written (input already waits in the pipeline),
        // for a few seconds at most, then beside the pipeline. Every aws
        // filter asks at once, so that several wait 3 s, not 3 s each.
        let mut asking = tokio::task::JoinSet::new();
        for filter in &plan.filters {
            if let crate::fluentbit::plan::FilterAction::Aws(aws) = &filter.action {
                let aws = aws.clone();
                asking.spawn(async move {
                    crate::fluentbit::aws_filter::fetch(&aws, Duration::from_secs(3)).await
                });
            }
        }
        asking.join_all().await;
    }
    // A tail input's DB is opened as the user Sluice runs as, as the
    // spool's files are.
    let drop_in_tails = match drop_in
        .as_ref()
        .map(|plan| plan.tail_inputs.clone())
        .unwrap_or_default()
        .into_iter()
        .map(crate::tail_input::TailStart::open)
        .collect::<Result<Vec<_>, _>>()
    {
        Ok(tails) => tails,
        Err(e) => {
            tracing::error!(error = %e, "cannot open the database of [INPUT] tail");
            return ExitCode::FAILURE;
        }
    };
    let drop_in_execs = drop_in
        .as_ref()
        .map(|plan| plan.exec_inputs.clone())
        .unwrap_or_default();
    let drop_in_dummies = drop_in
        .as_ref()
        .map(|plan| plan.dummy_inputs.clone())
        .unwrap_or_default();
    if let (Some(metrics), Some(c)) = (&plugin_metrics, &cloudwatch) {
        let _ = c.counters.plugin_metrics.set(metrics.clone());
    }
    let router = drop_in.map(|plan| Router::new(plan, policies, plugin_metrics.clone()));
    let stage = OutputStage::new(
        full,
        router,
        identity,
        budget.clone(),
        pipeline_counters.clone(),
        totals.clone(),
    );
    let stopping = stage.stopping();
    // Set up: from here on, limits.memory bounds what the heap holds beyond
    // what Sluice needs to run.
    budget.mark_heap_baseline();
    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    let (pipeline_tx, pipeline_rx) = mpsc::channel(PIPELINE_FRAMES);
    let (listening_tx, listening_rx) = watch::channel(true);
    // Never sent: dropped when serve returns, which stops the admin
    // endpoint (it keeps answering, with 503, while Sluice stops).
    let (_admin_stop, admin_stop) = watch::channel(());
    if let Some((addr, listener)) = admin_listener {
        let queue = pipeline_tx.downgrade();
        let sources = Sources {
            input: counters.clone(),
            budget: budget.clone(),
            pipeline: pipeline_counters,
            ship: cloudwatch.as_ref().map(|c| c.counters.clone()),
            spool: cloudwatch.as_ref().and_then(|c| c.spool.clone()),
            routes: totals,
            queue_depth: Box::new(move || {
                queue
                    .upgrade()
                    .map_or(0, |tx| (tx.max_capacity() - tx.capacity()) as u64)
            }),
        };
        let admin = Admin {
            sources,
            listening: listening_rx,
            started,
            plugin_metrics: plugin_metrics.clone(),
            hostname: crate::ecs::host_name().unwrap_or_default(),
        };
        tracing::info!(%addr, "admin endpoint: /healthz, /metrics, /api/v1/health, /api/v1/uptime, /api/v1/metrics[/prometheus] and /api/v2/metrics[/prometheus] (FireLens)");
        tokio::spawn(admin::serve(listener, Arc::new(admin), admin_stop));
    }
    let handle = tokio::runtime::Handle::current();
    let output = std::thread::spawn(move || write_output(pipeline_rx, handle, stage, sink));
    let wiring = InputWiring {
        pipeline: &pipeline_tx,
        budget: &budget,
        shutdown: &shutdown_rx,
        metrics: plugin_metrics.as_deref(),
    };
    let tcp_inputs: Vec<_> = tcp_inputs
        .into_iter()
        .map(|(listener, input)| {
            let links = wiring.links(InputKind::Tcp(input.addr));
            crate::tcp_input::spawn(listener, input, links)
        })
        .collect();
    let tail_inputs = wiring.start(drop_in_tails, InputKind::Tail, crate::tail_input::spawn);
    let exec_inputs = wiring.start(drop_in_execs, InputKind::Exec, crate::exec_input::spawn);
    let dummy_inputs = wiring.start(drop_in_dummies, InputKind::Dummy, crate::dummy_input::spawn);
    let server = tokio::spawn(server.run(pipeline_tx, shutdown_rx));
    match crate::startup_pages::release() {
        Ok(bytes) => tracing::debug!(bytes, "start-up code's pages given back"),
        Err(e) => tracing::debug!(error = %e, "start-up code's pages kept"),
    }

    let signal = signals.next().await;
    // ECS stops the log router after the containers that depend on it, and
    // the last lines of a crash matter: keep accepting for the drain window.
    let deadline = tokio::time::Instant::now() + grace;
    tracing::info!(
        signal,
        drain_ms = drain.as_millis() as u64,
        grace_ms = grace.as_millis() as u64,
        "draining: still accepting input"
    );
    tokio::select! {
        _ = tokio::time::sleep(drain) => {}
        second = signals.next() => tracing::info!(signal = second, "second signal: ending the drain early"),
    }
    tracing::info!("stopping: no new connections; writing what was received");
    // Stack traces held open go out now: clients waiting for their acks
    // are not kept waiting for multiline.wait.
    stopping.store(true, Ordering::Relaxed);
    let _ = shutdown_tx.send(true);
    // /healthz answers 503 from now on.
    let _ = listening_tx.send(false);
    let ship_counters = cloudwatch
        .as_ref()
        .map(|c| (c.counters.clone(), c.spool.is_some()));
    let finish = async {
        let _ = server.await;
        // Each input hands over what it read, then lets the pipeline close.
        for input in tcp_inputs
            .into_iter()
            .chain(tail_inputs)
            .chain(exec_inputs)
            .chain(dummy_inputs)
        {
            let _ = input.await;
        }
        let written = tokio::task::spawn_blocking(move || output.join())
            .await
            .ok()
            .and_then(Result::ok);
        // The output stage is done and has sent every batch: wait for
        // CloudWatch to have them.
        if let Some(run) = cloudwatch {
            let _ = run.shipper.await;
        }
        written
    };
    let received = || counters.events.load(Ordering::Relaxed);
    let outcome = tokio::time::timeout_at(deadline, finish).await;
    if let Some((c, spooled)) = &ship_counters {
        log_cloudwatch_totals(c, outcome.is_ok(), *spooled);
    }
    match outcome {
        Ok(Some(Ok(written))) => {
            tracing::info!(
                events_written = written,
                events_received = received(),
                "stopped"
            );
            ExitCode::SUCCESS
        }
        Ok(Some(Err(e))) => {
            tracing::error!(error = %e, "the output failed; unacked events will be resent by their clients");
            ExitCode::FAILURE
        }
        Ok(None) => ExitCode::FAILURE,
        Err(_) => {
            tracing::error!(
                grace_ms = grace.as_millis() as u64,
                events_received = received(),
                budget_bytes_in_use = budget.in_use(),
                "the shutdown grace ran out before everything was written; unacked events will be resent by their clients"
            );
            ExitCode::FAILURE
        }
    }
}

/// The sink `output.type` asks for; for CloudWatch, also the shipper.
async fn build_sink(
    full: &Config,
    drop_in: Option<&DropIn>,
    task_region: Option<&str>,
    policies: Arc<GroupPolicies>,
    budget: Arc<MemoryBudget>,
) -> Result<(Sink, Option<CloudWatchRun>), ExitCode> {
    if let Some(connection) = drop_in.and_then(|d| d.connection.as_ref()) {
        // The Fluent Bit configuration's CloudWatch outputs say where.
        let settings = ClientSettings {
            region: Some(connection.region.clone()),
            task_region: None,
            endpoint: connection.endpoint.clone(),
            assume_role: connection.role_arn.as_ref().map(|role| AssumeRole {
                role_arn: role.clone(),
                external_id: connection.external_id.clone(),
                sts_endpoint: connection.sts_endpoint.clone(),
            }),
        };
        let output = drop_in.map_or_else(
            || OutputSettings::own(full),
            |d| OutputSettings::of_drop_in(full, d),
        );
        return match start_cloudwatch(output, settings, policies, budget).await {
            Ok((sink, run)) => Ok((Sink::CloudWatch(Box::new(sink)), Some(run))),
            Err(e) => {
                tracing::error!(error = %e, "cannot start the CloudWatch output");
                Err(ExitCode::from(2))
            }
        };
    }
    if let (Some(spool), false) = (&full.spool, full.output == OutputType::Cloudwatch) {
        // stdout and files are written before the ack already.
        tracing::warn!(dir = %spool.dir.display(), "spool.dir is set, but the spool only serves output.type = \"cloudwatch\"; not using it");
    }
    match (&full.output, &full.file_dir) {
        (OutputType::File, Some(dir)) => match FileSink::new(dir.clone()) {
            Ok(files) => Ok((Sink::Files(files), None)),
            Err(e) => {
                tracing::error!(dir = %dir.display(), error = %e, "cannot use the file output directory");
                Err(ExitCode::FAILURE)
            }
        },
        (OutputType::Cloudwatch, _) => {
            let settings = ClientSettings {
                region: full.cloudwatch.region.clone(),
                task_region: task_region.map(str::to_string),
                endpoint: full.cloudwatch.endpoint.clone(),
                assume_role: None,
            };
            match start_cloudwatch(OutputSettings::own(full), settings, policies, budget).await {
                Ok((sink, run)) => Ok((Sink::CloudWatch(Box::new(sink)), Some(run))),
                Err(e) => {
                    tracing::error!(error = %e, "cannot start the CloudWatch output");
                    Err(ExitCode::from(2))
                }
            }
        }
        _ => Ok((Sink::stdout(), None)),
    }
}

/// `limits.memory`, or a default that fits the container's memory limit;
/// logs how it was chosen when the limit mattered.
fn memory_budget(configured: Option<u64>) -> u64 {
    let self_cgroup = std::fs::read_to_string("/proc/self/cgroup").unwrap_or_default();
    let container_limit = memory_limit::container_limit(Path::new("/sys/fs/cgroup"), &self_cgroup);
    let budget = memory_limit::budget(configured, container_limit);
    let mib = |bytes: u64| bytes >> 20;
    match budget.note {
        Some(Note::Lowered { container_limit }) => tracing::info!(
            budget_mib = mib(budget.bytes),
            container_limit_mib = mib(container_limit),
            "limits.memory is not set: the budget fits the container's memory limit"
        ),
        Some(Note::ConfiguredAboveLimit { container_limit }) => tracing::warn!(
            budget_mib = mib(budget.bytes),
            container_limit_mib = mib(container_limit),
            headroom_mib = mib(memory_limit::HEADROOM),
            "limits.memory and the headroom it needs exceed the container's memory limit: a burst may get Sluice OOM-killed"
        ),
        None => {}
    }
    budget.bytes
}

/// Binds `admin.listen`; requests wait in its backlog until it is served.
async fn bind_admin(addr: std::net::SocketAddr) -> Result<tokio::net::TcpListener, ExitCode> {
    match admin::bind(addr).await {
        Ok(listener) => Ok(listener),
        Err(e) => {
            tracing::error!(%addr, error = %e, "cannot listen for admin.listen");
            Err(ExitCode::FAILURE)
        }
    }
}

/// Where the CloudWatch output spools and how long a batch waits.
struct OutputSettings {
    spool: Option<SpoolConfig>,
    flush_interval: Duration,
}

impl OutputSettings {
    /// Sluice's own: `spool.dir` and `cloudwatch.flush_interval`.
    fn own(full: &Config) -> OutputSettings {
        OutputSettings {
            spool: full.spool.clone(),
            flush_interval: full.cloudwatch.flush_interval.0,
        }
    }

    /// What a FireLens configuration says in their place, as `HTTP_Server`
    /// replaces `admin.listen`: an input's filesystem buffering puts the
    /// spool in `storage.path`, and `[SERVICE] Flush` is a batch's wait.
    fn of_drop_in(full: &Config, drop_in: &DropIn) -> OutputSettings {
        let mut output = OutputSettings::own(full);
        if let Some(storage) = &drop_in.storage {
            if let Some(own) = &full.spool {
                tracing::info!(spool_dir = %own.dir.display(), storage_path = %storage.path.display(), "the FireLens configuration's storage.path replaces spool.dir");
            }
            output.spool = Some(storage.spool(full.spool_limits));
        }
        if let Some(flush) = drop_in.flush {
            tracing::info!(
                flush_ms = flush.as_millis() as u64,
                "the FireLens configuration's [SERVICE] Flush replaces cloudwatch.flush_interval"
            );
            output.flush_interval = flush;
        }
        output
    }
}

/// Builds the client (region and credentials from the SDK's default chain),
/// starts the shipper, and returns the sink the output stage writes to.
async fn start_cloudwatch(
    output: OutputSettings,
    settings: ClientSettings,
    policies: Arc<GroupPolicies>,
    budget: Arc<MemoryBudget>,
) -> Result<(CloudWatchSink, CloudWatchRun), String> {
    let client = CloudWatchClient::new(&settings).await?;
    let spool = match output.spool {
        None => None,
        Some(c) => match Spool::open(c.clone()) {
            Ok(spool) => {
                let (bytes, segments) = spool.shared().usage();
                tracing::info!(dir = %c.dir.display(), segments, bytes, fsync = c.fsync, "spool open");
                Some(spool)
            }
            // A task volume that is not writable for this user (on Fargate,
            // one the image does not declare starts as root's, 0755): an
            // essential log router that exits would stop the task, so run,
            // and say loudly what is lost.
            Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => {
                tracing::error!(dir = %c.dir.display(), error = %e, "the spool directory is not writable for this user; running WITHOUT the spool: acked events are held in memory only until CloudWatch has them. Mount a volume this user can write there (spool.dir, or a FireLens configuration's storage.path)");
                None
            }
            Err(e) => {
                return Err(format!(
                    "cannot use the spool directory {}: {e}",
                    c.dir.display()
                ))
            }
        },
    };
    let spool_shared = spool.as_ref().map(Spool::shared);
    let counters = Arc::new(ShipCounters::default());
    // Wedged means no success for a while; the clock starts now.
    counters
        .last_success_ms
        .store(crate::event::now_ms(), Ordering::Relaxed);
    let shipper = Arc::new(Shipper::new(
        client,
        policies,
        counters.clone(),
        spool_shared.clone(),
    ));
    let (outbound_tx, outbound_rx) = mpsc::unbounded_channel();
    let shipper = tokio::spawn(shipper.run(outbound_rx));
    let sink = CloudWatchSink::new(
        budget,
        output.flush_interval,
        outbound_tx,
        counters.clone(),
        tokio::runtime::Handle::current(),
        spool,
    );
    tracing::info!(
        endpoint = settings.endpoint.as_deref().unwrap_or("the region's"),
        "sending to CloudWatch Logs"
    );
    Ok((
        sink,
        CloudWatchRun {
            counters,
            shipper,
            spool: spool_shared,
        },
    ))
}

/// What reached CloudWatch, and what did not, when the sidecar stops.
fn log_cloudwatch_totals(c: &ShipCounters, finished: bool, spooled: bool) {
    let load = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed);
    let refused: u64 = c.rejected().iter().sum();
    let queued = load(&c.events_queued);
    let delivered = load(&c.events_delivered);
    let undelivered = queued.saturating_sub(delivered + refused);
    if finished && undelivered == 0 {
        tracing::info!(
            events_delivered = delivered,
            events_refused = refused,
            requests = load(&c.requests),
            retries = load(&c.retries),
            "CloudWatch has every event"
        );
    } else if spooled {
        tracing::warn!(
            events_delivered = delivered,
            events_refused = refused,
            events_not_delivered = undelivered,
            batches_not_delivered = load(&c.outstanding),
            "events could not be delivered to CloudWatch before the grace ran out; they stay in the spool for the next run"
        );
    } else {
        tracing::error!(
            events_delivered = delivered,
            events_refused = refused,
            events_not_delivered = undelivered,
            batches_not_delivered = load(&c.outstanding),
            "events could not be delivered to CloudWatch before the grace ran out"
        );
    }
}

/// SIGTERM and SIGINT, caught from the start of `serve`: one that comes
/// while start-up is still under way (the listeners already up) is kept
/// for [`Signals::next`], not left to kill the process.
struct Signals {
    term: Option<tokio::signal::unix::Signal>,
    int: Option<tokio::signal::unix::Signal>,
}

impl Signals {
    fn new() -> Signals {
        use tokio::signal::unix::{signal, SignalKind};
        Signals {
            term: signal(SignalKind::terminate()).ok(),
            int: signal(SignalKind::interrupt()).ok(),
        }
    }

    async fn next(&mut self) -> &'static str {
        let (Some(term), Some(int)) = (&mut self.term, &mut self.int) else {
            // Without signal handlers, run until the process is killed.
            std::future::pending::<()>().await;
            return "none";
        };
        tokio::select! {
            _ = term.recv() => "SIGTERM",
            _ = int.recv() => "SIGINT",
        }
    }
}

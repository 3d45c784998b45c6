//! big_vision's `train.py` in nine sections, read top to bottom: config and workdir, devices
//! and mesh, data, model and init, optimizer and step, loading a checkpoint, evaluators, the
//! loop, and the end. [`run`] calls one function per section; each returns what the later
//! ones read.
//!
//! A custom training loop is a copy of this file.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bv_core::autodiff::value_and_grad;
use bv_core::distributed::{CoordinationClient, Job, ProcessInfo};
use bv_core::io::HostArray;
use bv_core::numpy as np;
use bv_core::pjrt::ClientOptions;
use bv_core::random::{self, Key};
use bv_core::sharding::rules::{self, Leaf};
use bv_core::sharding::{Mesh, NamedSharding, PartitionSpec};
use bv_core::{jit, prim, Array, Aval, DType, Jit, Spec, Tensor};
use bv_nn::models::ImageModel;
use bv_nn::Stream;

use crate::checkpoint::{self, Checkpoint};
use crate::config::{check_batch_divisible, check_location, Config, Plan};
use crate::data::{self, Batch, Corruption, Source, TfdsDataset, TrainConfig, Value};
use crate::error::TrainError;
use crate::evaluators;
use crate::losses;
use crate::metrics::MetricWriter;
use crate::optim::{self, Optimizer, Transform};
use crate::pp::{Pipeline, OPS};
use crate::prefetch::Ahead;
use crate::progress::Progress;
use crate::stop::{self, Interrupted, StopPoint};
use crate::trainers::{self, StepInputs, TrainState, Trainer};
use crate::workdir::{self, WorkdirLock};
use bv_core::tree::{Params, Tree};

/// What a run is asked to do (the `bv-train --config ... --workdir ...` flags).
#[derive(Clone, Debug)]
pub struct RunArgs {
    /// The RON config.
    pub config: PathBuf,
    /// Where checkpoints, metrics and `config.json` go.
    pub workdir: PathBuf,
    /// `key.path=value` overrides.
    pub overrides: Vec<String>,
    /// Where prepared TFDS datasets live (default: `$TFDS_DATA_DIR`).
    pub data_dir: Option<PathBuf>,
    /// Stop after this step (to test resuming); the run continues on the next call.
    pub stop_after: Option<u64>,
    /// This process's place in a multi-process job (`ProcessInfo::single()` when alone).
    pub process: ProcessInfo,
    /// Virtual CPU devices of the client (`--cpu-devices`; CPU plugins only).
    pub cpu_devices: Option<usize>,
    /// Lets processes whose plugin has no collectives across processes (the CPU plugins)
    /// each train a replica of their own on their share of the data, instead of refusing.
    pub allow_independent_replicas: bool,
}

/// How a run ended.
#[derive(Clone, Debug, Default)]
pub struct Summary {
    /// The last finished step.
    pub step: u64,
    /// The last logged training loss.
    pub training_loss: Option<f64>,
    /// The last value of every evaluator metric.
    pub evals: BTreeMap<String, f64>,
}

/// The training state on devices: parameters, in name order (as a fresh run, a restored
/// checkpoint and `model_init` all give them, so each compiles the same step), and optimizer
/// state.
type DeviceState = (Params<Array>, BTreeMap<String, Array>);

/// The traced arguments of the update step: state, loop key, step, image, labels, the
/// trainer's other batch features and its fixed parameters.
pub type StepArgs = (
    TrainState,
    (Tensor, Tensor, Tensor, Tensor),
    (Params, Params),
);

/// What a checkpoint gives back: the state, the input position and the chrono.
type Restored = (DeviceState, Option<data::Position>, Chrono);

/// Runs (or resumes) the training job of `args`, one function per section of big_vision's
/// `train.py`. Nothing is written to the workdir before the loop.
pub fn run(args: &RunArgs) -> Result<Summary, TrainError> {
    let setup = setup(args)?;
    let mesh = make_mesh(&setup.config, &setup.devices)?;
    let input = input(&setup, &mesh, &args.process)?;
    let model = model(&setup, &mesh, &input.probe)?;
    let step = optimizer_and_step(&setup, &mesh, &model)?;
    let start = load(&args.workdir, &setup.config, &mesh, &model, &step)?;
    let evaluators = evaluators(args, &setup, &mesh, &model, &input)?;
    let run = Run {
        args,
        setup,
        mesh,
        input,
        model,
        step,
        evaluators,
    };
    train_loop(run, start)
}

/// Section 1's result: the checked config, the job, the training split and the step plan.
struct Setup {
    config: Config,
    job: Job,
    /// Every process's devices, in the plugin's order (JAX's `jax.devices()`).
    devices: Vec<i64>,
    data_dir: Option<PathBuf>,
    /// Examples in the training split.
    data_size: u64,
    plan: Plan,
    /// Process 0's lock of a workdir that exists already (a new one is locked when created).
    lock: Option<WorkdirLock>,
    /// This process's part of the training split.
    input_split: Vec<data::SplitRange>,
    train_ds: Arc<TfdsDataset>,
}

/// 1. Config and workdir: every check runs before anything is written.
fn setup(args: &RunArgs) -> Result<Setup, TrainError> {
    let config = Config::load(&args.config, &args.overrides)?;
    config.validate()?;
    check_location("--workdir", &args.workdir)?;
    if let Some(d) = &args.data_dir {
        check_location("--data-dir", d)?;
    }
    let me = &args.process;
    let job = join(args)?;
    let devices: Vec<i64> = job
        .client
        .devices()
        .iter()
        .map(|d| i64::from(d.id()))
        .collect();
    check_batch_divisible(config.input.batch_size, devices.len() as u64)?;
    check_eval_batch_sizes(&config, devices.len())?;
    let data_dir = args
        .data_dir
        .clone()
        .or(config.input.data.data_dir.as_ref().map(PathBuf::from));
    let train_ds = open_dataset(&config.input.data.name, data_dir.as_deref())?;
    let data_size: u64 = train_ds
        .ranges(&config.input.data.split)?
        .iter()
        .map(|r| r.len())
        .sum();
    let plan = Plan::new(&config, data_size)?;
    let lock = (me.process_id == 0 && args.workdir.is_dir())
        .then(|| WorkdirLock::acquire(&args.workdir))
        .transpose()?;
    let input_split =
        train_ds.host_ranges(&config.input.data.split, me.process_id, me.num_processes)?;
    Ok(Setup {
        config,
        job,
        devices,
        data_dir,
        data_size,
        plan,
        lock,
        input_split,
        train_ds,
    })
}

/// Every evaluator's batch size (default: the training one) splits evenly over `devices`.
pub fn check_eval_batch_sizes(config: &Config, devices: usize) -> Result<(), TrainError> {
    for (name, e) in &config.evals {
        let bs = e.batch_size.unwrap_or(config.input.batch_size);
        check_batch_divisible(bs, devices as u64)
            .map_err(|err| TrainError::at(format!("evals.{name}.batch_size"), err))?;
    }
    Ok(())
}

/// 2. Devices and mesh: `config.mesh` (default: one `data` axis over every device) over
///    `devices`, one canonical device order for parameters, data and evaluators.
pub fn make_mesh(config: &Config, devices: &[i64]) -> Result<Mesh, TrainError> {
    let mesh_axes = config
        .mesh
        .clone()
        .unwrap_or_else(|| vec![("data".into(), -1)]);
    let axes: Vec<(&str, i64)> = mesh_axes.iter().map(|(a, s)| (a.as_str(), *s)).collect();
    Ok(Mesh::new(&axes, devices)?)
}

/// Section 3's result: the training input and its first batch (the model is built for its
/// shapes).
struct Input {
    train_cfg: TrainConfig,
    probe: Batch,
}

/// 3. Data: the training input pipeline, this process's share of each global batch.
fn input(setup: &Setup, mesh: &Mesh, me: &ProcessInfo) -> Result<Input, TrainError> {
    let config = &setup.config;
    let pp = Arc::new(Pipeline::build(&config.input.pp, OPS)?);
    let train_cfg = TrainConfig {
        sources: vec![Source {
            dataset: setup.train_ds.clone(),
            split: config.input.data.split.clone(),
            pp,
            weight: 1.0,
            shuffle_buffer: config.input.shuffle_buffer_size.unwrap_or(50_000) as usize,
        }],
        batch_size: local_batch_size(config.input.batch_size as usize, mesh)?,
        seed: config.seed,
        threads: std::thread::available_parallelism().map_or(2, |n| n.get()),
        prefetch: config.input.prefetch.unwrap_or(2) as usize,
        host_index: me.process_id,
        host_count: me.num_processes,
        shuffle_files: true,
        corruption: Corruption::default(),
    };
    let probe = data::train(&train_cfg, None)?
        .next()
        .ok_or(TrainError::InputEnded { step: None })??;
    Ok(Input { train_cfg, probe })
}

/// Section 4's result: the trainer (which holds the model), the layout and the init function.
struct Model {
    trainer: Arc<dyn Trainer>,
    /// `sharding_strategy` (default: everything replicated).
    strategy: Vec<(String, String)>,
    /// Teachers: loaded once, on devices, neither trained nor checkpointed.
    fixed: Params<Array>,
    rng_init: Key,
    rng_loop: Key,
    /// `trainer.init`, its parameters born with their final layout.
    init: Jit<(), Tensor, Params>,
    /// `init` lowered: the parameters' shapes.
    shapes: bv_core::Lowered,
    param_specs: Params<Spec>,
}

/// 4. Model and init: the trainer named by `config.trainer`, its teachers, the keys, and
///    the parameters' layout checked against `sharding_strategy`.
fn model(setup: &Setup, mesh: &Mesh, probe: &Batch) -> Result<Model, TrainError> {
    let config = &setup.config;
    let strategy = sharding_strategy(config);
    let trainer = trainers::build(config, probe, mesh.size(), &setup.plan)?;
    let fixed: Params<Array> = trainer
        .fixed(config)?
        .iter()
        .map(|(name, h)| Ok((name.to_string(), place(h, "params", name, mesh, &strategy)?)))
        .collect::<Result<_, TrainError>>()?;
    let (rng, rng_init) = Key::from_seed(config.seed as i64).split2();
    let (_, rng_loop) = rng.split2();
    check_losses(config)?;
    let init = {
        let t = trainer.clone();
        let rule = layout_rule(&strategy, mesh, "params");
        jit(move |key: Tensor| t.init(&key).sorted())
            .named("init")
            .sharded(mesh.clone(), move |p, a| rule(p, a))
    };
    let shapes = init.lower(&Key::spec())?;
    let param_specs: Params<Spec> = out_specs(&shapes)?;
    check_layouts(&strategy, mesh, "params", &param_specs)?;
    Ok(Model {
        trainer,
        strategy,
        fixed,
        rng_init,
        rng_loop,
        init,
        shapes,
        param_specs,
    })
}

/// `config.sharding_strategy`, or big_vision's default: every leaf replicated.
pub fn sharding_strategy(config: &Config) -> Vec<(String, String)> {
    config
        .sharding_strategy
        .clone()
        .unwrap_or_else(|| vec![(".*".into(), "replicate()".into())])
}

/// `config.loss` and every evaluator's `loss_name` name a loss of [`losses::NAMES`].
fn check_losses(config: &Config) -> Result<(), TrainError> {
    let loss_name = config.loss.clone().unwrap_or_else(|| "sigmoid_xent".into());
    for (what, name) in std::iter::once(("loss", &loss_name)).chain(
        config
            .evals
            .values()
            .filter_map(|e| e.loss_name.as_ref())
            .map(|n| ("evals.*.loss_name", n)),
    ) {
        if !losses::NAMES.contains(&name.as_str()) {
            return Err(TrainError::unknown(what, "loss", name, &losses::NAMES));
        }
    }
    Ok(())
}

/// Section 5's result: the optimizer's init and the update step.
struct Step {
    opt_init: Jit<(), Params, optim::State>,
    /// One per variant of a static step argument (`Trainer::variants`).
    updates: Vec<Jit<(), StepArgs, (TrainState, trainers::Measurements)>>,
}

/// 5. Optimizer and step: forward, backward and optimizer in one donating executable per
///    variant, each compiled on first use.
fn optimizer_and_step(setup: &Setup, mesh: &Mesh, m: &Model) -> Result<Step, TrainError> {
    let strategy = &m.strategy;
    let names: Vec<String> = m.param_specs.names().map(str::to_string).collect();
    let tx = Arc::new(optim::make_for_config(&setup.config, &setup.plan, &names)?);
    let frozen: Vec<String> = frozen_names(&setup.plan, &names)?;
    let opt_init = {
        let t = tx.clone();
        let rule = layout_rule(strategy, mesh, "opt");
        jit(move |p: Params| t.init(&p))
            .named("opt_init")
            .sharded(mesh.clone(), move |p, a| rule(p, a))
    };
    check_layouts(
        strategy,
        mesh,
        "opt",
        &out_specs::<BTreeMap<String, Spec>>(&opt_init.lower(&m.param_specs)?)?,
    )?;
    let update_variant = |variant: usize| {
        update_fn(m.trainer.clone(), tx.clone(), frozen.clone(), variant)
            .named("update")
            .donate_argnums(&[0])
            .sharded(mesh.clone(), update_rule(strategy, mesh))
    };
    let updates = (0..m.trainer.variants()).map(update_variant).collect();
    Ok(Step { opt_init, updates })
}

/// The update step of `trainer` (its variant `variant`, see `Trainer::variants`) with the
/// optimizer `tx`, `frozen` parameters left out of `l2_grads`: `Trainer::update` on
/// [`StepArgs`], jitted but neither named, donating nor laid out (the loop adds those).
pub fn update_fn<T: Transform + Send + Sync + 'static>(
    trainer: Arc<dyn Trainer>,
    tx: Arc<T>,
    frozen: Vec<String>,
    variant: usize,
) -> Jit<(), StepArgs, (TrainState, trainers::Measurements)> {
    jit(
        move |(state, (rng_loop, step, x, y), (features, fixed)): StepArgs| {
            let inputs = StepInputs {
                rng_loop: &rng_loop,
                step: &step,
                image: &x,
                labels: &y,
                features: &features,
                fixed: &fixed,
                variant,
            };
            trainer.update(tx.as_ref(), &frozen, state, inputs)
        },
    )
}

/// Section 6's result: where training starts.
struct Start {
    state: DeviceState,
    /// The last finished step (0 for a fresh run).
    step: u64,
    position: Option<data::Position>,
    chrono: Chrono,
}

/// 6. Load: the workdir's LAST checkpoint, else `config.resume`, else `model_init`, else
///    from scratch.
fn load(
    workdir: &Path,
    config: &Config,
    mesh: &Mesh,
    m: &Model,
    step: &Step,
) -> Result<Start, TrainError> {
    let restored = match checkpoint::load_latest(workdir)? {
        Some(latest) => {
            if latest.without_pointer {
                eprintln!(
                    "bv-train: {} has no checkpoint.bv-LAST; resuming from the newest complete checkpoint, {}",
                    workdir.display(),
                    latest.dir.display()
                );
            }
            Some(latest.checkpoint)
        }
        None => config.resume.as_ref().map(checkpoint::load).transpose()?,
    };
    Ok(match restored {
        Some(c) => {
            let (state, position, chrono) = restore(&c, mesh, &m.strategy)?;
            Start {
                state,
                step: c.step,
                position,
                chrono,
            }
        }
        None => {
            let mut params = m.init.call(&m.rng_init.to_array()?)?;
            if config.model_init.is_some() || config.student_init.is_some() {
                params = load_model_init(m.trainer.as_ref(), params, config, mesh, &m.strategy)?;
            }
            let opt = step.opt_init.call(&params)?;
            Start {
                state: (params, opt),
                step: 0,
                position: None,
                chrono: Chrono::default(),
            }
        }
    })
}

/// 7. Evaluators, built by their config's `type` (`evaluators::TYPES`).
fn evaluators(
    args: &RunArgs,
    setup: &Setup,
    mesh: &Mesh,
    m: &Model,
    input: &Input,
) -> Result<Vec<evaluators::Scheduled>, TrainError> {
    let me = &args.process;
    let ctx = evaluators::Context {
        config: &setup.config,
        model: m.trainer.model(),
        towers: m.trainer.towers(),
        predict_fns: m.trainer.predict_fns(),
        fixed: Arc::new(m.fixed.clone()),
        mesh: mesh.clone(),
        data_dir: setup.data_dir.clone(),
        threads: input.train_cfg.threads,
        process: (me.process_id, me.num_processes),
        workdir: args.workdir.clone(),
    };
    evaluators::from_config(&setup.plan.evals, &ctx)
}

/// Sections 1–7, which the loop reads.
struct Run<'a> {
    args: &'a RunArgs,
    setup: Setup,
    mesh: Mesh,
    input: Input,
    model: Model,
    step: Step,
    evaluators: Vec<evaluators::Scheduled>,
}

/// What the loop reports to: the progress line, the metrics file and the summary.
struct Log {
    progress: Progress,
    metrics: MetricWriter,
    summary: Summary,
}

/// 8. The loop: steps, their measurements, evaluators and checkpoints, then the end. A run
///    that is already complete writes nothing (its last line and checkpoint are written).
fn train_loop(run: Run, start: Start) -> Result<Summary, TrainError> {
    let Run {
        args,
        setup,
        mesh,
        input,
        model: m,
        step: fns,
        mut evaluators,
    } = run;
    let Setup {
        config,
        job,
        data_size,
        plan,
        lock,
        input_split,
        ..
    } = setup;
    let Start {
        mut state,
        step: first_step,
        position,
        mut chrono,
    } = start;
    let me = &args.process;
    let progress = Progress::new(plan.total_steps, first_step);
    if first_step == plan.total_steps {
        progress.note(&format!(
            "bv-train: the run in {} is complete (step {first_step})",
            args.workdir.display()
        ));
        let prefixes: Vec<&str> = evaluators.iter().map(|e| e.plan.prefix.as_str()).collect();
        return Ok(completed_summary(&args.workdir, first_step, &prefixes));
    }
    let (metrics, scratch, _lock) =
        open_workdir(args, &config, lock, first_step, &input_split, &progress)?;
    let num_params: usize = m.shapes.out_avals.iter().map(|a| a.size()).sum();
    progress.note(&format!(
        "bv-train: {} steps ({:.2} epochs of {data_size} examples, batch {}), model {} with {} parameters, {} device(s)",
        plan.total_steps,
        plan.epochs(),
        plan.batch_size,
        m.trainer.model().model_name(),
        num_params,
        mesh.size()
    ));
    let mut log = Log {
        progress,
        metrics,
        summary: Summary {
            step: first_step,
            ..Summary::default()
        },
    };
    if first_step == 0 {
        log.metrics.step_start(first_step);
        log.metrics.measure("num_params", num_params as f64);
        run_evals(&mut evaluators, &plan, &mut log, first_step, &state.0, true)?;
        log.metrics.step_end()?;
    }
    let batch_axis = mesh.axes()[0].0.clone();
    let feature_keys = m.trainer.batch_keys();
    let put = |batch: Result<Batch, data::PipelineError>| -> Result<_, TrainError> {
        let batch = batch?;
        let x = to_array(&batch, "image", &mesh, &batch_axis)?;
        let y = to_array(&batch, "labels", &mesh, &batch_axis)?;
        let features: Params<Array> = feature_keys
            .iter()
            .map(|k| Ok((k.clone(), to_array(&batch, k, &mesh, &batch_axis)?)))
            .collect::<Result<_, TrainError>>()?;
        Ok((batch, x, y, features))
    };
    let depth = config.prefetch_to_device.unwrap_or(1) as usize;
    let mut batches = Ahead::new(
        data::train(&input.train_cfg, position.as_ref())?,
        depth,
        put,
    );
    let rng_loop = m.rng_loop.to_array()?;
    let mut clock = Clock {
        start: Instant::now(),
        window: (Instant::now(), 0),
        device_kind: job.client.addressable_devices()[0].kind().to_string(),
        cores: mesh.size(),
    };
    let last_step = args
        .stop_after
        .map_or(plan.total_steps, |s| s.min(plan.total_steps));
    let stop_point = StopPoint::new(me);
    for step in first_step + 1..=last_step {
        let (batch, x, y, features) = batches
            .next()
            .ok_or(TrainError::InputEnded { step: Some(step) })??;
        log.metrics.step_start(step);
        let step_arr = Array::scalar((step - 1) as u32)?;
        let t = Instant::now();
        let update = &fns.updates[m.trainer.variant_at(step)];
        let step_args = (
            state,
            (rng_loop.clone(), step_arr, x, y),
            (features, m.fixed.clone()),
        );
        let ((params, opt), measured) = update.call(&step_args)?;
        if step == first_step + 1 {
            // The first step after a (re)start, compilation included.
            measured["training_loss"].block_until_ready()?;
            log.metrics
                .measure("z/secs/update0", t.elapsed().as_secs_f64());
        }
        state = (params, opt);
        chrono.examples_seen += plan.batch_size;
        if plan.log_due(step) || step == first_step + 1 {
            log_step(
                &mut log,
                &mut clock,
                &mut chrono,
                &plan,
                data_size,
                step,
                &measured,
            )?;
        } else {
            log.progress.update(step, log.summary.training_loss, None);
        }
        run_evals(&mut evaluators, &plan, &mut log, step, &state.0, false)?;
        log.metrics.step_end()?;
        // SIGINT/SIGTERM: this step is the last, and gets a checkpoint (`stop`).
        let stop = stop_point.reached(step)?.filter(|_| step < last_step);

        // After the step's line: a resumed run keeps exactly the lines up to its checkpoint.
        if let Some(keep) = plan
            .checkpoint_due(step)
            .or((step == last_step && step < plan.total_steps || stop.is_some()).then_some(false))
        {
            chrono.train_secs = chrono.train_secs_base + clock.start.elapsed().as_secs_f64();
            let writer = (&mesh, me, job.kv());
            save(
                &args.workdir,
                step,
                &state,
                batch.position.as_ref(),
                &chrono,
                keep,
                writer,
            )?;
        }
        log.summary.step = step;
        if let Some(signal) = stop {
            let by_peer = stop::by_peer();
            return Err(Interrupted {
                signal,
                step,
                by_peer,
            }
            .into());
        }
    }
    end(&log.progress, &job, me, &scratch)?;
    Ok(log.summary)
}

/// Where the loop's outputs go: process 0 locks the workdir (if this run creates it) and
/// writes its `config.json` and metrics; the other processes keep their metrics in a scratch
/// folder. Returns the metric writer, the scratch folder and the lock.
fn open_workdir(
    args: &RunArgs,
    config: &Config,
    lock: Option<WorkdirLock>,
    first_step: u64,
    input_split: &[data::SplitRange],
    progress: &Progress,
) -> Result<(MetricWriter, PathBuf, Option<WorkdirLock>), TrainError> {
    let me = &args.process;
    let scratch = std::env::temp_dir().join(format!(
        "bv-train-process-{}-{}",
        me.process_id,
        std::process::id()
    ));
    let lock = match lock {
        None if me.process_id == 0 => Some(WorkdirLock::acquire_new(&args.workdir)?),
        held => held,
    };
    let metrics_dir = if me.process_id == 0 {
        config.write_json(&args.workdir)?;
        args.workdir.clone()
    } else {
        workdir::create_dir(&scratch)?;
        scratch.clone()
    };
    if me.num_processes > 1 {
        let ranges: Vec<String> = input_split
            .iter()
            .map(|r| format!("{}[{}:{}]", r.name, r.start, r.end))
            .collect();
        progress.note(&format!(
            "bv-train: process {} of {}, coordinator {}, training input {}",
            me.process_id,
            me.num_processes,
            me.coordinator,
            ranges.join(" + ")
        ));
    }
    let metrics = MetricWriter::open(&metrics_dir, (first_step > 0).then_some(first_step))?;
    if let Some((old, lines)) = metrics.backup() {
        progress.note(&format!(
            "bv-train: no checkpoint to resume from, so training starts at step 0; the {lines} lines of the earlier {} are kept in {}",
            crate::metrics::METRICS_FILE,
            old.display()
        ));
    }
    Ok((metrics, scratch, lock))
}

/// Runs the evaluators due at `step` (at the first step of a fresh run, those without
/// `skip_first`) and logs their metrics and time.
fn run_evals(
    evaluators: &mut [evaluators::Scheduled],
    plan: &Plan,
    log: &mut Log,
    step: u64,
    params: &Params<Array>,
    first: bool,
) -> Result<(), TrainError> {
    for evaluators::Scheduled { plan: e, evaluator } in evaluators {
        let due = if first {
            !e.skip_first
        } else {
            e.due(step, plan.total_steps)
        };
        if !due {
            continue;
        }
        let t = Instant::now();
        for (k, v) in evaluator.run(params, step)? {
            let key = format!("{}{k}", e.prefix);
            log.metrics.measure(&key, v);
            log.summary.evals.insert(key.clone(), v);
            log.progress.note(&format!("step {step}: {key} = {v:.4}"));
        }
        log.metrics.measure(
            &format!("z/secs/eval/{}", e.name),
            t.elapsed().as_secs_f64(),
        );
    }
    Ok(())
}

/// The loop's timers: since the (re)start, since the last logged step, and what core hours
/// are counted in.
struct Clock {
    start: Instant,
    /// When the last logged step was logged, and its number.
    window: (Instant, u64),
    device_kind: String,
    /// Devices of the mesh.
    cores: usize,
}

/// Logs a step's measurements (an error if one is not finite), the schedules, throughput,
/// progress and core hours, as big_vision's loop does every `log_training_steps`.
fn log_step(
    log: &mut Log,
    clock: &mut Clock,
    chrono: &mut Chrono,
    plan: &Plan,
    data_size: u64,
    step: u64,
    measured: &BTreeMap<String, Array>,
) -> Result<(), TrainError> {
    let mut values = Vec::new();
    for (name, a) in measured {
        let v = f64::from(a.item::<f32>()?);
        if !v.is_finite() {
            return Err(TrainError::NotFinite {
                name: name.clone(),
                value: v,
                step,
            });
        }
        values.push((name, v));
    }
    let elapsed = clock.window.0.elapsed().as_secs_f64();
    let img_per_sec = (step - clock.window.1) as f64 * plan.batch_size as f64 / elapsed.max(1e-9);
    clock.window = (Instant::now(), step);
    let metrics = &mut log.metrics;
    for (name, v) in &values {
        metrics.measure(name, *v);
    }
    for (name, v) in plan.schedules.logged(step) {
        metrics.measure(&name, v);
    }
    chrono.train_secs = chrono.train_secs_base + clock.start.elapsed().as_secs_f64();
    metrics.measure("img/sec/core", img_per_sec / clock.cores as f64);
    metrics.measure("examples_seen", chrono.examples_seen as f64);
    metrics.measure("epoch", chrono.examples_seen as f64 / data_size as f64);
    metrics.measure("progress", step as f64 / plan.total_steps as f64);
    metrics.measure("uptime", chrono.train_secs);
    let core_hours = chrono.train_secs * clock.cores as f64 / 3600.0;
    metrics.measure(&format!("core_hours_{}", clock.device_kind), core_hours);
    metrics.measure("core_hours", core_hours);
    let loss = values
        .iter()
        .find(|(n, _)| *n == "training_loss")
        .map(|v| v.1);
    log.summary.training_loss = loss;
    log.progress.update(step, loss, Some(img_per_sec));
    Ok(())
}

/// 9. The end: every process finishes together; the others' scratch folders go.
fn end(progress: &Progress, job: &Job, me: &ProcessInfo, scratch: &Path) -> Result<(), TrainError> {
    progress.finish();
    job.barrier("bv-train/done", Duration::from_secs(3600))?;
    if me.process_id != 0 {
        let _ = std::fs::remove_dir_all(scratch);
    }
    Ok(())
}

/// Joins the job (`jax.distributed.initialize`): connects to the coordination service, then
/// creates the client with it. Several processes whose plugin cannot run one program across
/// them would each train a separate replica: refused unless asked for.
fn join(args: &RunArgs) -> Result<Job, TrainError> {
    let me = &args.process;
    let options = args.cpu_devices.map_or_else(ClientOptions::new, |n| {
        ClientOptions::new().cpu_device_count(n)
    });
    let job = Job::initialize(me, options, Duration::from_secs(300))?;
    if me.num_processes > 1 && !job.spans_processes() {
        if !args.allow_independent_replicas {
            return Err(TrainError::NoCollectives {
                processes: me.num_processes,
                plugin: client_plugin_name(&job.client),
                platform: job.client.platform_name().to_string(),
            });
        }
        eprintln!(
            "bv-train: --allow-independent-replicas: process {} trains a replica of its own over its {} device(s); process 0 writes the checkpoints",
            me.process_id,
            job.client.devices().len()
        );
    }
    Ok(job)
}

fn client_plugin_name(client: &bv_core::pjrt::Client) -> String {
    let path = client.plugin().path();
    path.file_name()
        .unwrap_or(path.as_os_str())
        .to_string_lossy()
        .into_owned()
}

/// This process's share of a global batch: the batch over the mesh's devices, times those
/// of them that are this process's (the whole batch when the mesh is all here).
pub fn local_batch_size(global: usize, mesh: &Mesh) -> Result<usize, TrainError> {
    let here: std::collections::HashSet<i64> = bv_core::default_client()?
        .addressable_devices()
        .iter()
        .map(|d| i64::from(d.id()))
        .collect();
    let local = mesh
        .device_ids()
        .iter()
        .filter(|d| here.contains(d))
        .count();
    Ok(global / mesh.size() * local)
}

/// Training-time accumulators kept in checkpoints (big_vision's `chrono`).
#[derive(Clone, Copy, Debug, Default, serde::Serialize, serde::Deserialize)]
struct Chrono {
    examples_seen: u64,
    train_secs: f64,
    #[serde(skip)]
    train_secs_base: f64,
}

/// The summary of a complete run: the last logged loss and eval values (metrics named
/// `<prefix>prec@1`, `<prefix>loss`) in its metrics file.
fn completed_summary(workdir: &Path, step: u64, prefixes: &[&str]) -> Summary {
    let mut summary = Summary {
        step,
        ..Summary::default()
    };
    let records = crate::metrics::read_metrics(workdir.join(crate::metrics::METRICS_FILE));
    for (name, value) in records.iter().flatten().flat_map(|r| &r.values) {
        let is_eval = prefixes.iter().any(|p| {
            name.strip_prefix(p)
                .is_some_and(|k| k == "prec@1" || k == "loss")
        });
        match value {
            Some(v) if is_eval => {
                summary.evals.insert(name.clone(), *v);
            }
            _ if name == "training_loss" => summary.training_loss = *value,
            _ => {}
        }
    }
    summary
}

/// Opens a prepared dataset (`dir`: the TFDS data dir, default `$TFDS_DATA_DIR`);
/// Fashion-MNIST is prepared on first use.
pub fn open_dataset(name: &str, dir: Option<&Path>) -> Result<Arc<TfdsDataset>, TrainError> {
    match TfdsDataset::open(name, dir) {
        Ok(ds) => Ok(Arc::new(ds)),
        Err(e)
            if name == "fashion_mnist"
                && !crate::storage::is_bucket(&data::tfds::data_dir(dir)) =>
        {
            eprintln!("bv-train: {e}; preparing fashion_mnist from the Debian IDX files");
            let idx = data::fashion_mnist::provide_idx_dir(None)?;
            data::fashion_mnist::prepare(&idx, &data::tfds::data_dir(dir), [None, None])?;
            Ok(Arc::new(TfdsDataset::open(name, dir)?))
        }
        Err(e) => Err(e.into()),
    }
}

/// The spec of one batch feature (its dtype as the device will see it).
pub fn batch_spec(batch: &Batch, key: &str) -> Result<Spec, TrainError> {
    let v = batch.data.get(key).ok_or_else(|| missing(key, batch))?;
    Ok(Spec::new(v.shape().to_vec(), value_dtype(key, v)?))
}

fn missing(key: &str, batch: &Batch) -> TrainError {
    TrainError::MissingFeature {
        key: key.to_string(),
        have: batch.data.keys().cloned().collect(),
    }
}

/// What a byte-string feature's reader wants instead.
const NOT_BYTES: &str = "numbers: byte strings cannot go to devices; decode them in pp";

fn bytes_feature(key: &str, v: &Value) -> TrainError {
    TrainError::FeatureType {
        key: key.to_string(),
        holds: v.dtype(),
        want: NOT_BYTES,
    }
}

fn value_dtype(key: &str, v: &Value) -> Result<DType, TrainError> {
    Ok(match v {
        Value::U8(_) => DType::U8,
        Value::I64(_) => DType::I32,
        Value::F32(_) => DType::F32,
        Value::Bytes(_) => return Err(bytes_feature(key, v)),
    })
}

/// A batch feature, this process's share of the global batch, as a global device array
/// split over the mesh's batch axis (big_vision's `make_fsarray_from_local_slice`).
pub fn to_array(batch: &Batch, key: &str, mesh: &Mesh, axis: &str) -> Result<Array, TrainError> {
    let v = batch.data.get(key).ok_or_else(|| missing(key, batch))?;
    let sharding = batch_sharding(mesh, axis, v.shape().len())?;
    let put =
        |bytes: &[u8], dtype| Array::from_process_local_data(bytes, dtype, v.shape(), &sharding);
    Ok(match v {
        Value::U8(a) => put(&a.data, DType::U8)?,
        Value::I64(a) => {
            let narrowed: Vec<u8> = a
                .data
                .iter()
                .flat_map(|&x| (x as i32).to_le_bytes())
                .collect();
            put(&narrowed, DType::I32)?
        }
        Value::F32(a) => put(bv_core::dtype::as_bytes(&a.data), DType::F32)?,
        Value::Bytes(_) => return Err(bytes_feature(key, v)),
    })
}

/// The layout of a batch of rank `rank`: its first (batch) dimension split over the mesh
/// axis `axis`, the others whole (a scalar is replicated).
pub fn batch_sharding(mesh: &Mesh, axis: &str, rank: usize) -> Result<NamedSharding, TrainError> {
    let mut spec = vec![None; rank];
    if let Some(first) = spec.first_mut() {
        *first = Some(axis);
    }
    Ok(NamedSharding::new(mesh.clone(), PartitionSpec::of(&spec))?)
}

/// The layout of each leaf under big_vision's `sharding_strategy`, names prefixed as
/// big_vision sees them (`params/...`, `opt/...`). `jit`'s out-spec function cannot fail, so
/// a leaf the strategy cannot lay out gets the default here; [`check_layouts`] reports it
/// as an error right after lowering, before anything runs.
pub fn layout_rule(
    strategy: &[(String, String)],
    mesh: &Mesh,
    prefix: &str,
) -> impl Fn(&str, &Aval) -> PartitionSpec + Send + Sync + Clone + 'static {
    let (strategy, mesh, prefix) = (strategy.to_vec(), mesh.clone(), prefix.to_string());
    move |path: &str, aval: &Aval| {
        let name = format!("{prefix}/{path}");
        let shape: Vec<i64> = aval.shape.iter().map(|&d| d as i64).collect();
        let leaf = Leaf {
            name: &name,
            shape: &shape,
            dtype: aval.dtype,
        };
        rules::infer(&strategy, &[leaf], &mesh)
            .map(|mut v| v.remove(0))
            .unwrap_or_default()
    }
}

/// The layout of the update step's arguments: the `(params, opt)` state first (paths
/// `0/0/...` and `0/1/...`), laid out by [`layout_rule`] as `params/...` and `opt/...`;
/// every other argument (keys, step, batch, fixed inputs) replicated.
pub fn update_rule(
    strategy: &[(String, String)],
    mesh: &Mesh,
) -> impl Fn(&str, &Aval) -> PartitionSpec + Send + Sync + Clone + 'static {
    let (params, opt) = (
        layout_rule(strategy, mesh, "params"),
        layout_rule(strategy, mesh, "opt"),
    );
    move |path: &str, aval: &Aval| match path.split_once('/') {
        Some(("0", rest)) => match rest.split_once('/') {
            Some(("0", name)) => params(name, aval),
            Some(("1", name)) => opt(name, aval),
            _ => PartitionSpec::replicated(),
        },
        _ => PartitionSpec::replicated(),
    }
}

/// `model.init`, then `init_head_bias` as big_vision applies it.
pub fn init_params(
    model: &dyn ImageModel,
    key: &Tensor,
    image: &Spec,
    head_bias: Option<f64>,
) -> Params {
    let mut params = model.init(key, image);
    if let (Some(b), Some(bias)) = (head_bias, params.get("head/bias").cloned()) {
        params.insert("head/bias", np::full(bias.shape(), b, bias.dtype()));
    }
    params
}

/// The outputs of a lowered function returning a tree (a lowered init: the parameters'
/// shapes and types, by name).
pub fn out_specs<T: Tree<Leaf = Spec>>(lowered: &bv_core::Lowered) -> Result<T, TrainError> {
    let specs: Vec<Spec> = lowered
        .out_avals
        .iter()
        .map(|a| Spec::new(a.shape.clone(), a.dtype))
        .collect();
    Ok(bv_core::tree::unflatten(&lowered.out_def, specs)?)
}

/// Lays out every leaf `prefix/<name>` of `specs` under `strategy`: a rule that does not
/// apply (a dimension the leaf lacks, an axis used twice, ...) is an error naming the rule
/// and the leaf, never a silent fall-back to replication.
fn check_layouts(
    strategy: &[(String, String)],
    mesh: &Mesh,
    prefix: &str,
    specs: &impl Tree<Leaf = Spec>,
) -> Result<(), TrainError> {
    let named: Vec<(String, Vec<i64>, DType)> = bv_core::tree::flatten(specs)
        .1
        .into_iter()
        .map(|(n, s)| {
            let shape = s.shape.iter().map(|&d| d as i64).collect();
            (format!("{prefix}/{n}"), shape, s.dtype)
        })
        .collect();
    let leaves: Vec<Leaf> = named
        .iter()
        .map(|(name, shape, dtype)| Leaf {
            name,
            shape,
            dtype: *dtype,
        })
        .collect();
    rules::infer(strategy, &leaves, mesh).map_err(|e| TrainError::at("sharding_strategy", e))?;
    Ok(())
}

/// Parameters in frozen schedule groups (`schedule: [(regex, None)]`).
fn frozen_names(plan: &Plan, names: &[String]) -> Result<Vec<String>, TrainError> {
    let groups: Vec<bool> = plan.schedules.groups().map(|(_, s)| s.is_none()).collect();
    let mut out = Vec::new();
    for n in names {
        if groups[plan.schedules.group_of(n)?] {
            out.push(n.clone());
        }
    }
    Ok(out)
}

/// What the training step is made of: the model, the optimizer chain, the loss and which
/// parameters are frozen (fixed for a run; see [`update_step`]).
pub struct Update<'a> {
    /// The model being trained.
    pub model: &'a dyn ImageModel,
    /// The optimizer chain (`optim::make_for_config`).
    pub tx: &'a dyn Transform,
    /// A name of [`losses::NAMES`].
    pub loss_name: &'a str,
    /// Parameters left out of `l2_grads` (frozen schedule groups).
    pub frozen: &'a [String],
    /// Mixup's `p` and the device count (the roll stays within each device's shard), if on.
    pub mixup: Option<(f64, usize)>,
}

/// One training step (big_vision's `update_fn`), traced inside `jit`: the step's key is
/// `fold_in(rng_loop, step)` with `step` the 0-based u32 step count, then the loss and its
/// gradient, the optimizer update, and the measurements. Returns the new state, the loss
/// before the step, `l2_grads`, `l2_params` and `l2_updates`.
pub fn update_step(
    u: &Update,
    (params, opt): TrainState,
    rng_loop: &Tensor,
    step: &Tensor,
    x: &Tensor,
    y: &Tensor,
) -> (TrainState, Tensor, Tensor, Tensor, Tensor) {
    let Update {
        model,
        tx,
        loss_name,
        frozen,
        mixup,
    } = *u;
    let (rng, image, labels) = trainers::classifier_batch(rng_loop, step, x, y, mixup);
    let (_, rng_model) = random::split2(&rng);
    let rngs = [(Stream::DROPOUT, rng_model)];
    let loss_fn =
        |p: Params| trainers::classifier_loss(model, p, &image, &labels, loss_name, &rngs);
    let (loss, grads) = value_and_grad(loss_fn)(&params);
    let (state, mut m) = trainers::apply_gradients(tx, frozen, (params, opt), grads);
    let mut take = |k: &str| m.remove(k).expect("apply_gradients measures it");
    let (l2_grads, l2_params, l2_updates) =
        (take("l2_grads"), take("l2_params"), take("l2_updates"));
    (state, loss, l2_grads, l2_params, l2_updates)
}

/// big_vision's mixup: `a·x + (1 − a)·roll(x, 1)` where the roll runs within each device's
/// shard of the batch (`devices` equal contiguous blocks), so no data crosses devices.
pub(crate) fn mix_with_neighbour(x: &Tensor, a: &Tensor, devices: usize) -> Tensor {
    let shape = x.shape().to_vec();
    let per_device = shape[0] / devices;
    let mut blocks: Vec<isize> = vec![devices as isize, per_device as isize];
    blocks.extend(shape[1..].iter().map(|&d| d as isize));
    let b = np::reshape(x, &blocks);
    let mut start = vec![0; blocks.len()];
    let mut limit: Vec<usize> = blocks.iter().map(|&d| d as usize).collect();
    start[1] = per_device - 1;
    let last = prim::slice(&b, &start, &limit);
    start[1] = 0;
    limit[1] = per_device - 1;
    let rest = prim::slice(&b, &start, &limit);
    let rolled = prim::concatenate(&[&last, &rest], 1);
    let rolled = np::reshape(
        &rolled,
        &shape.iter().map(|&d| d as isize).collect::<Vec<_>>(),
    );
    x * a + rolled * (1.0 - a)
}

/// Writes a checkpoint: parameters, optimizer state, the data position and the chrono. Every
/// process calls it; each writes the blocks of the arrays it holds.
fn save(
    workdir: &Path,
    step: u64,
    state: &DeviceState,
    position: Option<&data::Position>,
    chrono: &Chrono,
    keep: bool,
    (mesh, me, kv): (&Mesh, &ProcessInfo, Option<&CoordinationClient>),
) -> Result<(), TrainError> {
    let owned = checkpoint::owned_devices(mesh, me.process_id, me.num_processes)?;
    let mut leaves = Vec::new();
    let params = state.0.iter().map(|(n, a)| (format!("params/{n}"), a));
    let opt = state.1.iter().map(|(n, a)| (format!("opt/{n}"), a));
    for (name, a) in params.chain(opt) {
        leaves.push(checkpoint::LeafShards::of_array(&name, a, &owned)?);
    }
    let extra = serde_json::json!({ "position": position, "chrono": chrono });
    let peers = kv.map(|kv| checkpoint::Peers {
        process_id: me.process_id,
        num_processes: me.num_processes,
        kv,
    });
    checkpoint::save_shards(workdir, step, &leaves, &extra, keep, peers.as_ref())?;
    Ok(())
}

/// A checkpoint's state laid out as a fresh run would lay it out.
fn restore(
    c: &Checkpoint,
    mesh: &Mesh,
    strategy: &[(String, String)],
) -> Result<Restored, TrainError> {
    let mut params = Params::new();
    let mut opt = BTreeMap::new();
    for (name, h) in &c.leaves {
        let bad_leaf = || TrainError::CheckpointLeaf { name: name.clone() };
        let (prefix, rest) = name.split_once('/').ok_or_else(bad_leaf)?;
        let a = place(h, prefix, rest, mesh, strategy)?;
        match prefix {
            "params" => params.insert(rest, a),
            "opt" => {
                opt.insert(rest.to_string(), a);
            }
            _ => return Err(bad_leaf()),
        }
    }
    let bad = |what, source| TrainError::CheckpointExtra {
        step: c.step,
        what,
        source,
    };
    let position =
        serde_json::from_value(c.extra["position"].clone()).map_err(|e| bad("data position", e))?;
    let mut chrono: Chrono = match &c.extra["chrono"] {
        serde_json::Value::Null => Chrono::default(),
        v => serde_json::from_value(v.clone()).map_err(|e| bad("chrono", e))?,
    };
    chrono.train_secs_base = chrono.train_secs;
    Ok(((params.sorted(), opt), position, chrono))
}

/// `model_init`: parameters from big_vision npz files, merged with the fresh ones by the
/// trainer's loader (`dont_load`, posemb resampling), laid out like the fresh ones.
fn load_model_init(
    trainer: &dyn Trainer,
    fresh: Params<Array>,
    config: &Config,
    mesh: &Mesh,
    strategy: &[(String, String)],
) -> Result<Params<Array>, TrainError> {
    let init_host = bv_nn::npz::to_host(&fresh)?;
    let loaded = trainer.load(&init_host, config)?;
    let placed: Params<Array> = loaded
        .iter()
        .map(|(name, h)| Ok((name.to_string(), place(h, "params", name, mesh, strategy)?)))
        .collect::<Result<_, TrainError>>()?;
    Ok(placed.sorted())
}

/// A host array on the mesh, laid out as `sharding_strategy` lays out `prefix/name`
/// (`prefix` is `params` or `opt`, as in checkpoints).
pub fn place(
    h: &HostArray,
    prefix: &str,
    name: &str,
    mesh: &Mesh,
    strategy: &[(String, String)],
) -> Result<Array, TrainError> {
    let full = format!("{prefix}/{name}");
    let shape: Vec<i64> = h.shape().iter().map(|&d| d as i64).collect();
    let leaf = Leaf {
        name: &full,
        shape: &shape,
        dtype: h.dtype(),
    };
    let spec = rules::infer(strategy, &[leaf], mesh)
        .map_err(|e| TrainError::at("sharding_strategy", e))?
        .remove(0);
    let sharding = NamedSharding::new(mesh.clone(), spec)?;
    Ok(Array::from_bytes_sharded(
        h.bytes(),
        h.dtype(),
        h.shape(),
        &sharding,
    )?)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// float64 reference: within each of `devices` blocks, row i mixes with row i-1 (the
    /// first with the last of its block).
    #[test]
    fn mixup_rolls_within_each_device_block() {
        let (batch, width, devices) = (8usize, 3usize, 2usize);
        let x: Vec<f32> = (0..batch * width).map(|i| i as f32 * 0.5 - 3.0).collect();
        let f = jit(move |(x, a): (Tensor, Tensor)| mix_with_neighbour(&x, &a, devices));
        let args = (
            Array::from_slice(&x, &[batch, width]).unwrap(),
            Array::scalar(0.7f32).unwrap(),
        );
        let out = f.call(&args).unwrap().to_vec::<f32>().unwrap();
        let per = batch / devices;
        for r in 0..batch {
            let (block, i) = (r / per, r % per);
            let prev = block * per + (i + per - 1) % per;
            for c in 0..width {
                let want = 0.7 * f64::from(x[r * width + c]) + 0.3 * f64::from(x[prev * width + c]);
                assert!(
                    (f64::from(out[r * width + c]) - want).abs() < 1e-5,
                    "row {r} col {c}"
                );
            }
        }
    }
}

defmodule Snakepit.Pool do
  @moduledoc """
  The process that owns a pool of worker processes whose scheduling runs in Rust
  (`native/snakepit_rs`).

  It starts the native pool, registers it by name (`Snakepit.Pool.Registry`), logs what workers
  print and what happens to them, answers `await_ready/2`, and stops every worker when it
  terminates; if it dies without terminating, the native pool notices and stops them too.
  Requests never pass through it: `Snakepit.execute/3` (`Snakepit.Call`) hands them to the
  native pool in the caller's process.

  ## Calls to its process

  Upstream Snakepit's code (its tests among it) calls the pool's process directly; these calls
  are answered, each request run in a process of its own so that this one never waits:

    * `{:execute, command, args, opts}` - as `Snakepit.execute/3` with `opts`
    * `{:execute, pool, command, args, opts}` - the same on the pool named `pool` (v0.13)
    * `{:execute, command, args, opts, timeout}` - with `timeout` as the `:timeout` (v0.4.3)
    * `:get_stats`, `:list_workers`, `:await_ready` - as `Snakepit.get_stats/1`,
      `Snakepit.list_workers/1` and `await_ready/2`

  Any other call is answered `{:error, %Snakepit.Error{reason: :unsupported_call}}`; any other
  cast or message is logged (a warning) and ignored: nothing a caller sends crashes the pool.

  ## Options

  #{Snakepit.Pool.Options.docs(:pool)}

  An invalid option raises `ArgumentError` naming it.

  ## Start-up and failed starts

  Workers start concurrently. When the first round of starts ends, the pool is ready if at least
  one worker started (the others are retried in the background). If none started, the pool keeps
  retrying with back-off (100 ms doubling, up to 5 s) for as long as it has no worker:
  `await_ready/2` returns the error meanwhile, and becomes `:ok` once a worker has started.
  While no worker runs, requests wait in the queue (up to `:queue_timeout`) until
  `:max_start_failures` starts in a row have failed; then the circuit is open and they fail at
  once with `:circuit_open`, until a worker starts again.

  Nothing the pool does before starting workers (the adapter's `init/1` and
  `executable_path/1`) may take longer than `:startup_timeout`; `start_link/1` then returns
  `{:error, {:shutdown, message}}`.

  ## Life-cycle events

  The native pool tells this process what happens, and with `:event_listener` set, each event is
  forwarded as `{:snakepit_pool_event, name, event}` once this process has handled it (so
  `await_ready/2` already reflects it):

    * `{:ready, started}` - the first round of starts ended with `started` workers running
    * `{:start_failed, message}` - the first round of starts ended with no worker; retrying
    * `{:worker_ready, id, os_pid}` - a worker finished its handshake and takes requests
    * `{:worker_start_failed, message}` - one start failed (it is retried with back-off)
    * `{:worker_exit, id, os_pid, exit}` - a worker died or was killed; a replacement starts
    * `{:worker_retired, id, os_pid}` - a recycled worker exited after its replacement started
    * `{:circuit_open, failures}` - `failures` starts failed in a row
    * `:circuit_closed` - a worker started again after the circuit opened
    * `{:caller_gone, request_id}` - a caller died while its request waited; it was dropped
    * `:health_check_passed` - an idle worker answered its health check

    * `{:health_check_failed, id, os_pid, reason}` - a worker answered its health check with
      an error; it is replaced (a `:worker_exit` follows)

  A worker of an `execute/3` adapter is a BEAM process (`Snakepit.BeamWorker`, linked to this
  process), not an OS process: its events carry `nil` as `os_pid`.

  Each worker event is also emitted through `:telemetry` when it is loaded (see
  `Snakepit.Telemetry`: spawned, terminated, restarted, recycled, health check failed).

  ## Logs

  What workers print and what happens to them goes to `Logger` with the metadata `pool`,
  `worker_id` and `os_pid`. A worker's stdout lines are logged at `:info`, its stderr lines at
  `:warning`, prefixed with its id and with `snakepit_worker` (the worker id) in their metadata
  too, which tells them from the pool's own lines. A line read while the worker runs a
  request of a session also carries `session_id` (the request running when the line is read:
  a line printed just before a request ended may be read after it).

    * `config :snakepit, log_level: level` (`:debug`, `:info`, `:warning`, `:error` or `:none`)
      is the Logger level of the `:snakepit_rs` application while it runs: the pool's own logs
      and workers' output below `level` are dropped (`:none`: all). Unset, `Logger`'s own
      level decides. It also sets `SNAKEPIT_LOG_LEVEL` for Python workers (`Snakepit.Config`).
    * `config :snakepit, log_python_output: false` drops what workers print: their stdout and
      stderr are still read (a worker never blocks on a full pipe) but never logged, nor sent
      to this process. The default, `true`, logs them (upstream's default is `false`). Read
      when a pool starts.
  """

  use GenServer
  require Logger

  alias Snakepit.{BeamWorkers, Call, Error, Native, Telemetry}
  alias Snakepit.Adapter.Hooks
  alias Snakepit.Pool.{Options, Registry}

  @typedoc "A pool: its registered name or its process."
  @type pool :: atom() | pid()

  ## Public API

  @doc "Starts a pool; see the module doc for options. Invalid options raise `ArgumentError`."
  @spec start_link(keyword()) :: GenServer.on_start()
  def start_link(opts \\ []) do
    opts = Options.validate!(opts)
    GenServer.start_link(__MODULE__, opts, name: opts[:name])
  end

  @doc "A child spec for supervisors; its shutdown leaves room for the stop sequence."
  @spec child_spec(keyword()) :: Supervisor.child_spec()
  def child_spec(opts) do
    opts = Options.validate!(opts)

    %{
      id: {__MODULE__, opts[:name]},
      start: {__MODULE__, :start_link, [opts]},
      # Long enough for the SIGTERM → grace → SIGKILL sequence.
      shutdown: opts[:shutdown_grace] + 10_000
    }
  end

  @doc """
  Waits until the pool's first round of worker starts has ended. Returns `:ok` when a worker
  runs, `{:error, %Snakepit.Error{reason: :pool_not_initialized}}` while none could start (the
  pool keeps retrying; a later call returns `:ok` once one has), or if the pool is not ready
  within `timeout` ms.
  """
  @spec await_ready(pool(), timeout()) :: :ok | {:error, Error.t()}
  def await_ready(pool \\ __MODULE__, timeout \\ 15_000) do
    server = if is_atom(pool), do: Snakepit.Config.pool(pool), else: pool
    GenServer.call(server, :await_ready, timeout)
  catch
    :exit, {:timeout, _} ->
      {:error,
       Error.new(:pool_not_initialized, "pool #{inspect(pool)} not ready within #{timeout} ms")}

    :exit, {:noproc, _} ->
      {:error, Error.new(:pool_not_initialized, "pool #{inspect(pool)} is not running")}

    :exit, {reason, _} ->
      {:error, Error.new(:pool_shutdown, "pool #{inspect(pool)} stopped: #{inspect(reason)}")}
  end

  @doc "OS pids of every worker process of the pool that has not been reaped."
  @spec os_pids(pool()) :: [non_neg_integer()]
  def os_pids(pool \\ __MODULE__) do
    if native = Registry.native(pool), do: Native.pool_os_pids(native), else: []
  end

  @doc """
  Ends session `session_id` in `pool`: forgets the worker it is bound to (see
  `Snakepit.execute_in_session/4`), so that its next request runs like its first, and tells the
  pool's workers, which drop what they kept for it (`session_state` and the adapter's
  `on_session_end` hook in Python; a `session_end` frame, docs/protocol.md). Called for every
  pool when a session ends in `Snakepit.Bridge.SessionStore` (deleted or expired) and by
  `Snakepit.SessionHelpers.cleanup_session/2`. Returns whether the session was bound; a
  session id that could not be bound is `false`.
  """
  @spec end_session(pool(), String.t()) :: boolean()
  def end_session(pool \\ __MODULE__, session_id) when is_binary(session_id) do
    case Registry.native(pool) do
      nil -> false
      native -> Native.pool_end_session(native, session_id)
    end
  end

  @doc """
  What `pool` knows of session `session_id`: `nil` when it is not bound to a worker (never
  used here, forgotten, or unused for `:session_ttl`), else a map of

    * `worker_id`, `os_pid` - its worker; both `nil` when that worker is gone (exited,
      recycled): strict requests of the session are then refused with
      `:session_worker_unavailable`
    * `affinity` - the mode of its latest request
    * `idle_ms` - ms since its latest request was submitted

  Raises `Snakepit.Error` when the pool is not running.
  """
  @spec session_info(pool(), String.t()) :: map() | nil
  def session_info(pool \\ __MODULE__, session_id) when is_binary(session_id),
    do: Native.pool_session_info(Registry.native!(pool), session_id)

  @doc "Same as `Snakepit.execute/3`."
  @spec execute(String.t(), Call.args(), keyword()) ::
          {:ok, term()} | {:error, Error.t()}
  def execute(command, args, opts \\ []), do: Call.execute(command, args, opts)

  @doc "Same as `Snakepit.get_stats/1`."
  @spec get_stats(pool()) :: map()
  def get_stats(pool \\ __MODULE__), do: Snakepit.get_stats(pool)

  @doc "Same as `Snakepit.list_workers/1`."
  @spec list_workers(pool()) :: [map()]
  def list_workers(pool \\ __MODULE__), do: Snakepit.list_workers(pool)

  @doc """
  Upstream's `get_stats(pool_server, pool_name)`: here each named pool is a pool of its own, so
  this is `Snakepit.get_stats(pool_name)`.
  """
  @spec get_stats(pool(), atom()) :: map()
  def get_stats(_pool_server, pool_name), do: Snakepit.get_stats(pool_name)

  @doc "Upstream's `list_workers(pool_server, pool_name)`: `Snakepit.list_workers(pool_name)`."
  @spec list_workers(pool(), atom()) :: [map()]
  def list_workers(_pool_server, pool_name), do: Snakepit.list_workers(pool_name)

  @doc "Upstream's name for `await_ready/2`: the whole first round of starts has ended."
  @spec await_init_complete(pool(), timeout()) :: :ok | {:error, Error.t()}
  defdelegate await_init_complete(pool \\ __MODULE__, timeout \\ 15_000),
    to: __MODULE__,
    as: :await_ready

  ## GenServer callbacks

  @impl true
  def init(opts) do
    Process.flag(:trap_exit, true)

    with {:ok, config} <- native_config(opts[:adapter_module], opts),
         {:ok, native} <- start_native(config, opts) do
      Registry.register(opts[:name], native, opts)

      {:ok,
       %{
         name: opts[:name],
         native: native,
         listener: opts[:event_listener],
         status: :starting,
         waiters: [],
         beam_workers: BeamWorkers.new(opts),
         # Worker id → OS pid, for the logs' metadata (from `:worker_ready` to the worker's exit).
         os_pids: %{}
       }}
    else
      {:error, message} -> {:stop, {:shutdown, message}}
    end
  end

  @impl true
  def handle_call(:await_ready, from, state) do
    case state.status do
      :ready -> {:reply, :ok, state}
      {:failed, error} -> {:reply, {:error, error}, state}
      :starting -> {:noreply, %{state | waiters: [from | state.waiters]}}
    end
  end

  # Upstream's callers (its tests among them) call the pool's process directly. The request runs
  # in a process of its own, as `Snakepit.execute/3` would in the caller's: this process never
  # waits for a worker.
  def handle_call({:execute, command, args, opts}, from, state) when is_list(opts) do
    name = state.name
    reply_later(from, fn -> Call.run(name, command, args, opts) end)
    {:noreply, state}
  end

  # v0.13's form, naming one of the pools its pool process manages.
  def handle_call({:execute, pool, command, args, opts}, from, state)
      when is_atom(pool) and is_list(opts) do
    if pool == state.name,
      do: reply_later(from, fn -> Call.run(pool, command, args, opts) end),
      else: reply_later(from, fn -> Call.execute(command, args, [{:pool, pool} | opts]) end)

    {:noreply, state}
  end

  # v0.4.3's tests give the call's timeout last.
  def handle_call({:execute, command, args, opts, timeout}, from, state)
      when is_binary(command) and is_list(opts) do
    name = state.name
    opts = Keyword.put_new(opts, :timeout, timeout)
    reply_later(from, fn -> Call.run(name, command, args, opts) end)
    {:noreply, state}
  end

  def handle_call(:get_stats, _from, state),
    do: {:reply, Native.pool_stats(state.native), state}

  def handle_call(:list_workers, _from, state),
    do: {:reply, Native.pool_workers(state.native), state}

  def handle_call(request, {caller, _}, state) do
    Logger.warning(
      "pool #{inspect(state.name)} got an unexpected call from #{inspect(caller)}: " <>
        inspect(request)
    )

    message = "pool #{inspect(state.name)} does not answer #{inspect(request)}"
    {:reply, {:error, Error.new(:unsupported_call, message, %{request: request})}, state}
  end

  @impl true
  def handle_cast(request, state) do
    Logger.warning("pool #{inspect(state.name)} ignored an unexpected cast: #{inspect(request)}")
    {:noreply, state}
  end

  @impl true
  def handle_info({:snakepit_event, event}, state) do
    state = handle_event(event, state)
    if state.listener, do: send(state.listener, {:snakepit_pool_event, state.name, event})
    {:noreply, state}
  end

  # A session ended in a session store this pool was subscribed to (`SessionStore.subscribe/2`;
  # the application's store ends sessions on every pool itself): forget its worker, and its
  # workers drop its state.
  def handle_info({:snakepit_session_ended, session_id, _reason}, state) do
    Native.pool_end_session(state.native, session_id)
    {:noreply, state}
  end

  def handle_info({:snakepit_log, worker_id, stream, line, session_id}, state) do
    level = if stream == :stderr, do: :warning, else: :info

    metadata = [snakepit_worker: worker_id] ++ log_metadata(state, worker_id)
    metadata = if session_id, do: [{:session_id, session_id} | metadata], else: metadata

    Logger.log(level, fn -> "[#{worker_id}] #{line}" end, metadata)
    {:noreply, state}
  end

  # BEAM workers (an `execute/3` adapter): the native pool's orders to start or kill one.
  def handle_info({:snakepit_beam, order}, state) do
    {:noreply,
     %{state | beam_workers: BeamWorkers.handle(state.beam_workers, state.native, order)}}
  rescue
    # Only the native pool sends these; anything malformed is someone else's message.
    error ->
      Logger.warning("pool #{inspect(state.name)} ignored #{inspect(order)}: #{inspect(error)}")
      {:noreply, state}
  end

  # Exits of linked BEAM workers (the native pool hears of them) and ports (e.g. the interpreter
  # lookup of an adapter); the parent's exit is handled by GenServer itself, which then runs
  # terminate/2.
  def handle_info({:EXIT, from, reason}, state) do
    beam_workers = BeamWorkers.exited(state.beam_workers, state.native, from, reason)
    {:noreply, %{state | beam_workers: beam_workers}}
  end

  def handle_info(message, state) do
    Logger.warning(
      "pool #{inspect(state.name)} ignored an unexpected message: #{inspect(message)}"
    )

    {:noreply, state}
  end

  @impl true
  def terminate(_reason, state) do
    reply_waiters(
      state,
      {:error, Error.new(:pool_shutdown, "pool #{inspect(state.name)} stopped")}
    )

    Registry.unregister(state.name)
    Hooks.unregister(state.native)
    Native.pool_stop(state.native)
    BeamWorkers.stop(state.beam_workers)
  end

  # Answers a `GenServer.call/3` caller from another process, with what `fun` returns — or an
  # error if `fun` does not return (a caller waiting on the pool never waits for nothing).
  defp reply_later(from, fun) do
    spawn(fn ->
      reply =
        try do
          fun.()
        catch
          kind, reason ->
            message = Exception.format_banner(kind, reason)
            {:error, Error.new(:pool_shutdown, "the request failed: #{message}")}
        end

      GenServer.reply(from, reply)
    end)
  end

  ## Events

  defp handle_event({:ready, started}, state) do
    log(state, :debug, fn -> "pool #{inspect(state.name)} ready with #{started} workers" end)
    reply_waiters(%{state | status: :ready}, :ok)
  end

  defp handle_event({:start_failed, message}, state) do
    log(state, :error, fn ->
      "pool #{inspect(state.name)} could not start any worker: #{message}; " <>
        "retrying with back-off (up to 5 s)"
    end)

    error = Error.new(:pool_not_initialized, "no worker could start: #{message}")
    reply_waiters(%{state | status: {:failed, error}}, {:error, error})
  end

  defp handle_event({:worker_ready, worker_id, os_pid}, state) do
    state = %{state | os_pids: Map.put(state.os_pids, worker_id, os_pid)}
    log(state, :debug, fn -> "worker #{worker_id} ready (os pid #{os_pid})" end, worker_id)
    worker_event(state, :spawned, %{system_time: System.system_time()}, worker_id, %{})

    case state.status do
      {:failed, _} ->
        log(state, :info, fn -> "pool #{inspect(state.name)}: a worker started; ready" end)
        reply_waiters(%{state | status: :ready}, :ok)

      _ ->
        state
    end
  end

  defp handle_event({:worker_exit, worker_id, os_pid, exit}, state) do
    log(
      state,
      :warning,
      fn -> "worker #{worker_id} (os pid #{os_pid}) exited: #{exit}; replacing it" end,
      worker_id
    )

    now = %{system_time: System.system_time()}
    worker_event(state, :terminated, now, worker_id, %{reason: exit, planned: false})
    worker_event(state, :restarted, %{count: 1}, worker_id, %{reason: exit})
    forget_worker(state, worker_id)
  end

  defp handle_event({:worker_retired, worker_id, os_pid}, state) do
    log(state, :debug, fn -> "worker #{worker_id} (os pid #{os_pid}) recycled" end, worker_id)
    now = %{system_time: System.system_time()}
    worker_event(state, :terminated, now, worker_id, %{reason: :recycled, planned: true})
    worker_event(state, :recycled, %{count: 1}, worker_id, %{reason: :recycled})
    forget_worker(state, worker_id)
  end

  defp handle_event({:health_check_failed, worker_id, os_pid, reason}, state) do
    log(
      state,
      :warning,
      fn -> "worker #{worker_id} (os pid #{os_pid}) failed its health check: #{reason}" end,
      worker_id
    )

    worker_event(state, :health_check_failed, %{count: 1}, worker_id, %{reason: reason})
    state
  end

  defp handle_event({:circuit_open, failures}, state) do
    log(state, :error, fn ->
      "pool #{inspect(state.name)}: #{failures} worker starts failed in a row; " <>
        "requests fail with :circuit_open while no worker runs; retrying with back-off (up to 5 s)"
    end)

    state
  end

  defp handle_event(:circuit_closed, state) do
    log(state, :info, fn ->
      "pool #{inspect(state.name)}: a worker started again; circuit closed"
    end)

    state
  end

  defp handle_event(:health_check_passed, state), do: state

  defp handle_event({:caller_gone, request_id}, state) do
    log(state, :debug, fn ->
      "pool #{inspect(state.name)}: caller of queued request #{request_id} died"
    end)

    state
  end

  defp handle_event({:worker_start_failed, message}, state) do
    log(state, :error, fn -> message end)
    state
  end

  defp handle_event(event, state), do: ignore_event(event, state)

  defp ignore_event(event, state) do
    log(state, :warning, fn ->
      "pool #{inspect(state.name)} ignored an unknown event: #{inspect(event)}"
    end)

    state
  end

  ## Logs and worker events

  # Logs at `level`, with the worker's metadata when about one. `log_level` applies through
  # the application's Logger level (`Snakepit.Application`).
  defp log(state, level, message, worker_id \\ nil),
    do: Logger.log(level, message, log_metadata(state, worker_id))

  defp log_metadata(state, nil), do: [pool: state.name]

  defp log_metadata(state, worker_id),
    do: [pool: state.name, worker_id: worker_id, os_pid: Map.get(state.os_pids, worker_id)]

  # `[:snakepit, :pool, :worker, name]` (`[:snakepit, :worker, name]` for upstream's recycled
  # and health-check events) through `:telemetry`, when loaded.
  defp worker_event(state, name, measurements, worker_id, metadata) do
    prefix =
      if name in [:recycled, :health_check_failed],
        do: [:snakepit, :worker],
        else: [:snakepit, :pool, :worker]

    metadata =
      Map.merge(metadata, %{
        pool: state.name,
        worker_id: worker_id,
        os_pid: Map.get(state.os_pids, worker_id)
      })

    Telemetry.execute(prefix ++ [name], measurements, metadata)
  end

  defp forget_worker(state, worker_id),
    do: %{state | os_pids: Map.delete(state.os_pids, worker_id)}

  defp reply_waiters(state, reply) do
    Enum.each(state.waiters, &GenServer.reply(&1, reply))
    %{state | waiters: []}
  end

  ## Starting the native pool

  # The pool's options in the shape the native pool takes; `start_native/2` adds what the
  # adapter decides.

  defp native_config(_adapter, opts) do
    {:ok,
     %{
       name: pool_label(opts[:name]),
       size: opts[:size],
       cwd: opts[:cwd],
       max_queue_size: opts[:max_queue_size],
       queue_timeout_ms: opts[:queue_timeout],
       startup_timeout_ms: opts[:startup_timeout],
       max_frame_size: opts[:max_frame_size],
       shutdown_grace_ms: opts[:shutdown_grace],
       run_id: Snakepit.Application.run_id(),
       cancel_grace_ms: opts[:cancel_grace],
       health_check_interval_ms: opts[:health_check_interval] || 0,
       health_check_timeout_ms: opts[:health_check_timeout],
       worker_max_requests: opts[:worker_max_requests] || 0,
       worker_ttl_ms: opts[:worker_ttl] || 0,
       max_start_failures: opts[:max_start_failures],
       affinity: opts[:affinity],
       session_ttl_ms: opts[:session_ttl] || 0,
       stream_window: opts[:stream_window],
       stream_timeout_ms: timeout_ms(opts[:stream_timeout]),
       chunk_timeout_ms: opts[:chunk_timeout] || 0,
       log_output: Application.get_env(:snakepit, :log_python_output, true) != false,
       watchdog: Snakepit.ProcessRegistry.watchdog_path(),
       registry_file: Snakepit.ProcessRegistry.registry_file()
     }}
  rescue
    error in ArgumentError -> {:error, Exception.message(error)}
  end

  # Adds what the adapter decides (`Snakepit.Adapter.launch/2`: a program, its arguments and
  # environment; or workers in the BEAM) and starts the native pool. The adapter's callbacks
  # are bounded by `:startup_timeout` themselves (see `Snakepit.Adapter`).
  defp start_native(config, opts) do
    with {:ok, launch} <- Snakepit.Adapter.launch(opts[:adapter_module], opts) do
      native = Native.pool_start(Map.merge(config, launch_config(launch, opts[:env])), self())
      Hooks.register(native, opts[:adapter_module])
      {:ok, native}
    end
  rescue
    error in ArgumentError -> {:error, Exception.message(error)}
  end

  defp launch_config({:process, %{executable: executable, args: args, env: env}}, user_env),
    do: %{beam: false, executable: executable, args: args, env: merge_env(env, user_env)}

  defp launch_config(:beam, _user_env), do: %{beam: true, executable: "", args: [], env: []}

  # The adapter's variables win over the user's for the same name (it merged what it needed).
  defp merge_env(adapter_env, user_env) do
    adapter_names = MapSet.new(adapter_env, &elem(&1, 0))
    adapter_env ++ Enum.reject(user_env, fn {name, _} -> MapSet.member?(adapter_names, name) end)
  end

  # `Snakepit.Pool` → "snakepit_pool", `:my_pool` → "my_pool": a prefix for worker ids.
  # `:infinity` runs for ~8900 years, as a call's (`Snakepit.Call`).
  defp timeout_ms(:infinity), do: 0xFFFF_FFFF_FFFF
  defp timeout_ms(ms), do: ms

  defp pool_label(name) do
    name
    |> Atom.to_string()
    |> String.replace_prefix("Elixir.", "")
    |> Macro.underscore()
    |> String.replace(~r/[^A-Za-z0-9_]+/, "_")
  end
end

defmodule Snakepit.Pool do
  @moduledoc """
  A pool of worker processes whose scheduling runs in Rust (`native/snakepit_rs`).

  This process owns the pool: it starts it, logs what workers print, answers `await_ready/2`,
  and stops every worker when it terminates. Requests never pass through it: `execute/3` hands
  them to the native pool directly and waits for the reply in the caller.

  ## Options

    * `:name` - name to register and to pass as `:pool` (default `Snakepit.Pool`)
    * `:size` - number of workers (default `System.schedulers_online() * 2`)
    * `:adapter_module` - a `Snakepit.Adapter` (default `Snakepit.Adapters.Python`)
    * `:adapter_args` - list of strings given to the worker program (default `[]`)
    * `:python_executable` - interpreter for the Python adapter (default `python3`)
    * `:env` - extra environment, a map or list of `{name, value}` strings (default `[]`)
    * `:cwd` - working directory of workers (default: the BEAM's)
    * `:queue_timeout` - ms a request may wait for a free worker (default `5000`)
    * `:max_queue_size` - requests allowed to wait; more get `:pool_saturated` (default `1000`)
    * `:startup_timeout` - ms a worker may take to start (default `10000`)
    * `:timeout` - default execution timeout of a request in ms (default `30000`)
    * `:max_frame_size` - largest request or reply in bytes (default 16 MiB)
    * `:shutdown_grace` - ms between SIGTERM and SIGKILL when stopping (default `2000`)
    * `:cancel_grace` - ms a worker has to answer after its request timed out (it is sent a
      cancel frame) before it is killed and replaced (default `2000`)
    * `:health_check_interval` - ms between pings of an idle worker; one that fails or does not
      answer within `:health_check_timeout` (default `5000`) is replaced; `nil` turns health checks
      off (default `30000`)
    * `:worker_max_requests` - recycle a worker after this many requests (default `nil`: never)
    * `:worker_ttl` - recycle a worker after this many ms (default `nil`: never). A recycled
      worker's replacement starts first; the old one finishes its request and exits.
    * `:max_start_failures` - consecutive failed worker starts after which the pool reports the
      circuit open; while no worker runs, requests then fail at once with `:circuit_open`
      (default `5`)
  """

  use GenServer
  require Logger

  alias Snakepit.{Error, Native}

  @defaults [
    name: __MODULE__,
    size: nil,
    adapter_module: Snakepit.Adapters.Python,
    adapter_args: [],
    python_executable: nil,
    env: [],
    cwd: nil,
    queue_timeout: 5_000,
    max_queue_size: 1_000,
    startup_timeout: 10_000,
    timeout: 30_000,
    max_frame_size: 16 * 1024 * 1024,
    shutdown_grace: 2_000,
    cancel_grace: 2_000,
    health_check_interval: 30_000,
    health_check_timeout: 5_000,
    worker_max_requests: nil,
    worker_ttl: nil,
    max_start_failures: 5
  ]

  @typedoc "A pool's registered name."
  @type pool :: atom()

  ## Public API

  @doc "Starts a pool; see the module doc for options. Invalid options raise `ArgumentError`."
  @spec start_link(keyword()) :: GenServer.on_start()
  def start_link(opts \\ []) do
    opts = validate_options!(opts)
    GenServer.start_link(__MODULE__, opts, name: opts[:name])
  end

  @doc false
  def child_spec(opts) do
    opts = validate_options!(opts)

    %{
      id: {__MODULE__, opts[:name]},
      start: {__MODULE__, :start_link, [opts]},
      # Long enough for the SIGTERM → grace → SIGKILL sequence.
      shutdown: opts[:shutdown_grace] + 10_000
    }
  end

  @doc """
  Waits until the pool's workers have started. Returns `{:error, %Snakepit.Error{}}` if none could
  start, or if the pool is not ready within `timeout` ms.
  """
  @spec await_ready(pool(), timeout()) :: :ok | {:error, Error.t()}
  def await_ready(pool \\ __MODULE__, timeout \\ 15_000) do
    GenServer.call(pool, :await_ready, timeout)
  catch
    :exit, {:timeout, _} ->
      {:error,
       Error.new(:pool_not_initialized, "pool #{inspect(pool)} not ready within #{timeout} ms")}

    :exit, {:noproc, _} ->
      {:error, Error.new(:pool_not_initialized, "pool #{inspect(pool)} is not running")}
  end

  @doc "Runs `command` on a worker of the pool given by `opts[:pool]`; see `Snakepit.execute/3`."
  @spec execute(String.t(), map(), keyword()) :: {:ok, term()} | {:error, Error.t()}
  def execute(command, args, opts \\ []) do
    pool = Keyword.get(opts, :pool, __MODULE__)

    with {:ok, {native, queue_timeout, default_timeout}} <- lookup(pool),
         {:ok, timeout} <- timeout_option(opts, default_timeout),
         {:ok, session_id} <- session_option(opts),
         :ok <- validate_request(command, args) do
      tag = make_ref()

      case submit(native, tag, command, args, session_id, timeout_ms(timeout)) do
        {:ok, request_id} -> await_reply(native, tag, request_id, min(queue_timeout, timeout))
        {:error, error} -> {:error, Error.from_native(error)}
      end
    end
  end

  @doc "Counters and occupancy of the pool; see `Snakepit.get_stats/1`."
  @spec get_stats(pool()) :: map()
  def get_stats(pool \\ __MODULE__), do: Native.pool_stats(native!(pool))

  @doc "One map per worker slot; see `Snakepit.list_workers/1`."
  @spec list_workers(pool()) :: [map()]
  def list_workers(pool \\ __MODULE__), do: Native.pool_workers(native!(pool))

  @doc "OS pids of every worker process of the pool that has not been reaped."
  @spec os_pids(pool()) :: [non_neg_integer()]
  def os_pids(pool \\ __MODULE__) do
    case lookup(pool) do
      {:ok, {native, _, _}} -> Native.pool_os_pids(native)
      {:error, _} -> []
    end
  end

  ## GenServer callbacks

  @impl true
  def init(opts) do
    Process.flag(:trap_exit, true)
    adapter = opts[:adapter_module]

    with :ok <- adapter_init(adapter, opts),
         {:ok, native} <- start_native(adapter, opts) do
      :persistent_term.put(key(opts[:name]), {native, opts[:queue_timeout], opts[:timeout]})
      {:ok, %{name: opts[:name], native: native, status: :starting, waiters: []}}
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

  @impl true
  def handle_info({:snakepit_event, event}, state), do: {:noreply, handle_event(event, state)}

  def handle_info({:snakepit_log, worker_id, stream, line}, state) do
    level = if stream == :stderr, do: :warning, else: :info
    Logger.log(level, fn -> "[#{worker_id}] #{line}" end, snakepit_worker: worker_id)
    {:noreply, state}
  end

  # Exits of linked ports (e.g. `System.cmd/3` in an adapter); the parent's exit is handled by
  # GenServer itself, which then runs terminate/2.
  def handle_info({:EXIT, _from, _reason}, state), do: {:noreply, state}

  @impl true
  def terminate(_reason, state) do
    :persistent_term.erase(key(state.name))
    Native.pool_stop(state.native)
  end

  ## Internals

  defp handle_event({:ready, started}, state) do
    Logger.debug("pool #{inspect(state.name)} ready with #{started} workers")
    reply_waiters(%{state | status: :ready}, :ok)
  end

  defp handle_event({:start_failed, message}, state) do
    Logger.error("pool #{inspect(state.name)} could not start any worker: #{message}")
    error = Error.new(:pool_not_initialized, "no worker could start: #{message}")
    reply_waiters(%{state | status: {:failed, error}}, {:error, error})
  end

  defp handle_event({:worker_ready, worker_id, os_pid}, state) do
    Logger.debug("worker #{worker_id} ready (os pid #{os_pid})")
    state
  end

  defp handle_event({:worker_exit, worker_id, os_pid, exit}, state) do
    Logger.warning("worker #{worker_id} (os pid #{os_pid}) exited: #{exit}; replacing it")
    state
  end

  defp handle_event({:worker_retired, worker_id, os_pid}, state) do
    Logger.debug("worker #{worker_id} (os pid #{os_pid}) recycled")
    state
  end

  defp handle_event({:circuit_open, failures}, state) do
    Logger.error(
      "pool #{inspect(state.name)}: #{failures} worker starts failed in a row; " <>
        "requests fail with :circuit_open while no worker runs; retrying with back-off (up to 5 s)"
    )

    state
  end

  defp handle_event(:circuit_closed, state) do
    Logger.info("pool #{inspect(state.name)}: a worker started again; circuit closed")
    state
  end

  defp handle_event({:worker_start_failed, message}, state) do
    Logger.error(message)
    state
  end

  defp reply_waiters(state, reply) do
    Enum.each(state.waiters, &GenServer.reply(&1, reply))
    %{state | waiters: []}
  end

  defp adapter_init(adapter, opts) do
    if function_exported?(adapter, :init, 1), do: adapter.init(opts), else: :ok
  end

  defp start_native(adapter, opts) do
    config = %{
      name: pool_label(opts[:name]),
      size: opts[:size],
      executable: adapter.executable_path(opts),
      args: adapter.script_args(opts),
      env: merge_env(adapter.env(opts), opts[:env]),
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
      watchdog: Snakepit.ProcessRegistry.watchdog_path(),
      registry_file: Snakepit.ProcessRegistry.registry_file()
    }

    {:ok, Native.pool_start(config, self())}
  rescue
    error in ArgumentError -> {:error, Exception.message(error)}
  end

  # The adapter's variables win over the user's for the same name (it merged what it needed).
  defp merge_env(adapter_env, user_env) do
    adapter_names = MapSet.new(adapter_env, &elem(&1, 0))
    adapter_env ++ Enum.reject(user_env, fn {name, _} -> MapSet.member?(adapter_names, name) end)
  end

  # `Snakepit.Pool` → "snakepit_pool", `:my_pool` → "my_pool": a prefix for worker ids.
  defp pool_label(name) do
    name
    |> Atom.to_string()
    |> String.replace_prefix("Elixir.", "")
    |> Macro.underscore()
    |> String.replace(~r/[^A-Za-z0-9_]+/, "_")
  end

  defp key(name), do: {__MODULE__, name}

  # Introspection of a pool that is not running is a programming error: raise.
  defp native!(pool) do
    case lookup(pool) do
      {:ok, {native, _, _}} -> native
      {:error, error} -> raise error
    end
  end

  defp lookup(pool) do
    case :persistent_term.get(key(pool), nil) do
      nil -> {:error, Error.new(:pool_not_initialized, "pool #{inspect(pool)} is not running")}
      entry -> {:ok, entry}
    end
  end

  # Encoding args happens in the submit NIF; beyond this size (bytes in external term format, a
  # fast proxy for the JSON's) it could outlast a scheduler slice, so a dirty scheduler takes it.
  @dirty_args_bytes 64 * 1024

  defp submit(native, tag, command, args, session_id, timeout_ms) do
    if :erlang.external_size(args) > @dirty_args_bytes,
      do: Native.pool_submit_dirty(native, tag, command, args, session_id, timeout_ms),
      else: Native.pool_submit(native, tag, command, args, session_id, timeout_ms)
  end

  # Waits for `{tag, reply}`. When `wait` ms pass without it, the native pool decides atomically:
  # the request is withdrawn (expired: no reply will ever come), it has time left, or its reply is
  # already on the way.
  defp await_reply(native, tag, request_id, wait) do
    receive do
      {^tag, reply} -> decode_reply(reply)
    after
      wait ->
        case Native.pool_check_deadline(native, request_id) do
          {:wait, more} -> await_reply(native, tag, request_id, more)
          {:expired, error} -> {:error, Error.from_native(error)}
          :replied -> receive(do: ({^tag, reply} -> decode_reply(reply)))
        end
    end
  end

  defp decode_reply({:ok_json, json}) do
    # Beyond this size decoding may outlast a scheduler slice; a dirty scheduler takes it.
    decoded =
      if byte_size(json) > 64 * 1024,
        do: Native.json_decode_dirty(json),
        else: Native.json_decode(json)

    case decoded do
      {:ok, _} = ok -> ok
      {:error, error} -> {:error, Error.from_native(error)}
    end
  end

  defp decode_reply({:ok, _} = ok), do: ok
  defp decode_reply({:error, error}), do: {:error, Error.from_native(error)}

  defp validate_request(command, args) do
    cond do
      not is_binary(command) ->
        {:error,
         Error.new(:invalid_command, "command must be a string, got: #{inspect(command)}")}

      not String.valid?(command) ->
        {:error, Error.new(:invalid_command, "command is not valid UTF-8: #{inspect(command)}")}

      not is_map(args) ->
        {:error, Error.new(:invalid_args, "args must be a map, got: #{inspect(args)}")}

      true ->
        :ok
    end
  end

  defp timeout_option(opts, default) do
    case Keyword.get(opts, :timeout, default) do
      :infinity -> {:ok, :infinity}
      ms when is_integer(ms) and ms > 0 -> {:ok, ms}
      other -> {:error, invalid_option(:timeout, "a positive integer or :infinity", other)}
    end
  end

  defp session_option(opts) do
    case Keyword.get(opts, :session_id) do
      nil ->
        {:ok, nil}

      id when is_binary(id) and id != "" ->
        if String.valid?(id),
          do: {:ok, id},
          else: {:error, invalid_option(:session_id, "a UTF-8 string", id)}

      other ->
        {:error, invalid_option(:session_id, "a non-empty string", other)}
    end
  end

  defp invalid_option(name, expected, got) do
    Error.new(
      :invalid_option,
      "invalid #{inspect(name)} option: expected #{expected}, got: #{inspect(got)}"
    )
  end

  @max_timeout_ms 0xFFFF_FFFF_FFFF
  defp timeout_ms(:infinity), do: @max_timeout_ms
  defp timeout_ms(ms), do: ms

  ## Option validation

  @doc false
  def defaults, do: @defaults

  @doc false
  def validate_options!(opts) do
    opts = Keyword.validate!(opts, @defaults)
    opts = Keyword.update!(opts, :size, &(&1 || System.schedulers_online() * 2))
    Enum.each(opts, fn {name, value} -> check_option!(name, value) end)
    Keyword.update!(opts, :env, &normalize_env/1)
  end

  defp check_option!(:name, value),
    do: check!(:name, is_atom(value) and value != nil, "an atom", value)

  defp check_option!(name, value) when name in [:size, :max_queue_size, :max_frame_size],
    do: check!(name, is_integer(value) and value > 0, "a positive integer", value)

  defp check_option!(name, value)
       when name in [
              :queue_timeout,
              :startup_timeout,
              :timeout,
              :shutdown_grace,
              :cancel_grace,
              :health_check_timeout
            ],
       do:
         check!(name, is_integer(value) and value > 0, "a positive integer (milliseconds)", value)

  defp check_option!(name, value)
       when name in [:health_check_interval, :worker_max_requests, :worker_ttl],
       do:
         check!(
           name,
           is_nil(value) or (is_integer(value) and value > 0),
           "nil or a positive integer",
           value
         )

  defp check_option!(:max_start_failures, value),
    do: check!(:max_start_failures, is_integer(value) and value > 0, "a positive integer", value)

  defp check_option!(:adapter_module, value) do
    check!(
      :adapter_module,
      is_atom(value) and Code.ensure_loaded?(value) and
        function_exported?(value, :executable_path, 1),
      "a module implementing Snakepit.Adapter",
      value
    )
  end

  defp check_option!(:adapter_args, value),
    do:
      check!(
        :adapter_args,
        is_list(value) and Enum.all?(value, &is_binary/1),
        "a list of strings",
        value
      )

  defp check_option!(:python_executable, value),
    do: check!(:python_executable, is_nil(value) or is_binary(value), "a string", value)

  defp check_option!(:cwd, value),
    do: check!(:cwd, is_nil(value) or is_binary(value), "a string", value)

  defp check_option!(:env, value) do
    valid =
      (is_map(value) or is_list(value)) and
        Enum.all?(value, &match?({k, v} when is_binary(k) and is_binary(v), &1))

    check!(:env, valid, "a map or list of {name, value} strings", value)
  end

  defp check!(_name, true, _expected, _value), do: :ok

  defp check!(name, false, expected, value) do
    raise ArgumentError,
          "invalid value for #{inspect(name)} option: expected #{expected}, got: #{inspect(value)}"
  end

  defp normalize_env(env), do: Enum.to_list(env)
end

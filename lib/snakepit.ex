defmodule Snakepit do
  @moduledoc """
  Pools of external worker processes (Python first) with Snakepit's API, on a Rust core.

      {:ok, _} = Snakepit.Pool.start_link(size: 4, adapter_args: ["--adapter", "my_pkg.MyAdapter"])
      :ok = Snakepit.Pool.await_ready()
      {:ok, %{"status" => "pong"}} = Snakepit.execute("ping", %{})

  Every call returns `{:ok, result}` or `{:error, %Snakepit.Error{}}`; a caller never crashes
  because of the pool. Results come back as maps with string keys.
  """

  alias Snakepit.{Call, Error, Native, Pool}
  alias Snakepit.Pool.Registry

  @doc """
  Runs `command` with `args` on a free worker and returns its result.

  `args` is a map; a keyword list (or a list of `{key, value}` pairs with atom or string keys,
  no key twice) is taken as the map of its pairs, and `nil` as `%{}`, as upstream Snakepit
  accepts them. The worker receives them as JSON: atom keys and values as strings, tuples as
  arrays, integers of any size exactly. Structs follow Jason's rules as far as JSON can: a
  `DateTime`, `NaiveDateTime`, `Date` or `Time` (of `Calendar.ISO`) is sent as the ISO 8601
  string its `to_iso8601/1` returns (`"2024-01-02T03:04:05.123456Z"`, `"2024-01-02"`), as Jason
  encodes it; any other struct is refused with `:invalid_args` naming it and where it was (e.g.
  `"a MyApp.User struct cannot be sent to a worker ... at args.user"`), as Jason refuses a
  struct that does not implement its encoder: JSON would lose what it is, and a struct's
  encoder may select or transform fields that snakepit_rs cannot see. Convert it first (e.g.
  `Map.from_struct/1`). Anything else JSON cannot carry (a pid, a function, a binary that is
  not UTF-8, ...) is refused the same way, and nothing is sent.

  Options:

  #{Snakepit.Pool.Options.docs(:call)}

  `:pool` may be a pool's name or its pid. A pid that is not a running snakepit_rs pool (a
  stub pool in a test, say) is called as upstream calls its pool,
  `GenServer.call(pool, {:execute, command, args, opts}, timeout)` (`timeout` is `:timeout`,
  else 300_000 ms), and its answer is returned, a bare `{:error, reason}` converted as upstream
  converts it (`Snakepit.Error.normalize_public_result/2`). A pool's own process answers that
  call too, like this function.

  An unknown or invalid option is `{:error, %Snakepit.Error{reason: :invalid_option}}`, naming
  it; nothing is sent. Every error is a `%Snakepit.Error{}` (see its docs for every reason and
  its category), whose `details` hold `reason`, `command` and `pool` (and `pool_name` when the
  pool has one); an exception raised by the worker's code is a `:worker_error` of category
  `:python_error` with upstream's exception struct in `details.reason`, e.g.
  `%Snakepit.Error.ValueError{}`, and its traceback in `python_traceback`.
  """
  @spec execute(String.t(), Call.args(), keyword()) :: {:ok, term()} | {:error, Error.t()}
  def execute(command, args, opts \\ []), do: Call.execute(command, args, opts)

  @doc """
  The pool's counters and occupancy, a map of:

    * `workers`, `available`, `busy` - worker slots: with a worker, idle, running a request
    * `requests` - requests the pool accepted (a refused call is not a request)
    * `completed` - accepted requests answered with a result
    * `errors` - accepted requests answered with an error: the sum of
      * `worker_errors` - the command raised, or the worker has no such command
      * `timeouts` - the command ran longer than its `:timeout`
      * `queue_timeouts` - no worker became free within `:queue_timeout` (it never ran)
      * `requests_lost` - its worker crashed or broke the protocol while running it
      * `shutdown_errors` - the pool stopped first
      * `circuit_errors` - it was waiting in the queue when the circuit opened
    * `callers_gone` - the caller died while its request waited in the queue: dropped, never run
    * `in_flight` - running now, no outcome yet
    * `queued` - waiting for a free worker now
    * `pool_saturated`, `circuit_rejections` - calls refused at once (`:pool_saturated`,
      `:circuit_open`); not requests
    * `worker_starts`, `worker_start_failures`, `worker_crashes` (a worker that died or broke
      the protocol, a failed health check among them), `workers_killed` (silent past a
      timeout and `:cancel_grace`, or a health check that got no answer), `worker_recycles`,
      `health_checks` - what happened to workers
    * `avg_response_time_ms` - submit to answer, over requests a worker answered (`completed`
      and `worker_errors`)
    * `circuit_open` - whether `:max_start_failures` starts in a row failed and none since
      succeeded

  Every accepted request is in exactly one of the outcomes, so in any one snapshot:

      requests == completed + errors + callers_gone + in_flight + queued

  Upstream Snakepit reports `errors` too but never increments it; here it counts every
  accepted request that ended in an error, as above.
  """
  @spec get_stats(Pool.pool()) :: map()
  def get_stats(pool \\ Pool), do: Native.pool_stats(Registry.native!(pool))

  @doc """
  One map per worker: `id`, `os_pid`, `status` (`:available`, `:busy`, `:starting`, or
  `:draining` — recycled, finishing its request before it exits), `requests`.
  """
  @spec list_workers(Pool.pool()) :: [map()]
  def list_workers(pool \\ Pool), do: Native.pool_workers(Registry.native!(pool))

  @doc """
  Starts what is needed, waits for the pool, runs `fun` and shuts everything down (no worker
  process is left), returning what `fun` returned.

  Options:

    * `:pool_options` - options for the pool when no `Snakepit.Pool` is running (default: the
      `:snakepit` application environment, see `Snakepit.Config`)
    * `:timeout` - ms to wait for the pool to be ready (default `15000`)
  """
  @spec run_as_script((() -> result), keyword()) :: result | {:error, Error.t()}
        when result: term()
  def run_as_script(fun, opts \\ []) when is_function(fun, 0) do
    {:ok, _} = Application.ensure_all_started(:snakepit)

    try do
      with :ok <- ensure_default_pool(opts),
           :ok <- Pool.await_ready(Pool, Keyword.get(opts, :timeout, 15_000)) do
        fun.()
      end
    after
      Application.stop(:snakepit)
    end
  end

  defp ensure_default_pool(opts) do
    if Process.whereis(Pool) do
      :ok
    else
      pool_options =
        Keyword.merge(Snakepit.Config.pool_options(), Keyword.get(opts, :pool_options, []))

      case DynamicSupervisor.start_child(Snakepit.PoolSupervisor, {Pool, pool_options}) do
        {:ok, _} ->
          :ok

        {:error, reason} ->
          {:error, Error.new(:pool_not_initialized, "cannot start the pool: #{inspect(reason)}")}
      end
    end
  end
end

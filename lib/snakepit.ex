defmodule Snakepit do
  @moduledoc """
  Pools of external worker processes (Python first) with Snakepit's API, on a Rust core.

      {:ok, _} = Snakepit.Pool.start_link(size: 4, adapter_args: ["--adapter", "my_pkg.MyAdapter"])
      :ok = Snakepit.Pool.await_ready()
      {:ok, %{"status" => "pong"}} = Snakepit.execute("ping", %{})

  Every call returns `{:ok, result}` or `{:error, %Snakepit.Error{}}`; a caller never crashes
  because of the pool. Results come back as maps with string keys.
  """

  alias Snakepit.{Error, Pool}

  @doc """
  Runs `command` with `args` (a map) on a free worker.

  Options:

    * `:pool` - the pool's name (default `Snakepit.Pool`)
    * `:timeout` - ms the command may run once on a worker (default: the pool's `:timeout`,
      30000). Waiting for a free worker is bounded separately by the pool's `:queue_timeout`.
  """
  @spec execute(String.t(), map(), keyword()) :: {:ok, term()} | {:error, Error.t()}
  def execute(command, args, opts \\ []), do: Pool.execute(command, args, opts)

  @doc """
  Pool statistics: `workers`, `available`, `busy`, `queued`, `requests` (accepted),
  `completed`, `errors`, `queue_timeouts`, `pool_saturated`, `timeouts`, `worker_crashes`,
  `worker_starts` and `avg_response_time_ms` (submit to reply, over completed requests).
  """
  @spec get_stats(Pool.pool()) :: map()
  def get_stats(pool \\ Pool), do: Pool.get_stats(pool)

  @doc "One map per worker: `id`, `os_pid`, `status` (`:available`, `:busy`, `:starting`), `requests`."
  @spec list_workers(Pool.pool()) :: [map()]
  def list_workers(pool \\ Pool), do: Pool.list_workers(pool)

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
    {:ok, _} = Application.ensure_all_started(:snakepit_rs)

    try do
      with :ok <- ensure_default_pool(opts),
           :ok <- Pool.await_ready(Pool, Keyword.get(opts, :timeout, 15_000)) do
        fun.()
      end
    after
      Application.stop(:snakepit_rs)
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

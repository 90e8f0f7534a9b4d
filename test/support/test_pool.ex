defmodule Snakepit.TestPool do
  @moduledoc """
  Starts pools of real Python workers running `test/support/python/snakepit_test_adapter.py`.
  """

  import ExUnit.Callbacks, only: [start_supervised!: 2]

  @adapter_dir Path.expand("python", __DIR__)

  @doc "Pool options for the test adapter, merged with `opts`."
  def options(opts \\ []) do
    name =
      Keyword.get_lazy(opts, :name, fn -> :"test_pool_#{System.unique_integer([:positive])}" end)

    extra_env = Keyword.get(opts, :env, [])

    Keyword.merge(
      [
        name: name,
        size: 2,
        adapter_args: ["--adapter", "snakepit_test_adapter.TestAdapter"],
        startup_timeout: 20_000
      ],
      opts
    )
    |> Keyword.put(:env, [{"PYTHONPATH", @adapter_dir} | extra_env])
  end

  @doc "Starts a supervised pool (stopped at the end of the test) and waits until it is ready."
  def start!(opts \\ []) do
    opts = options(opts)
    start_supervised!({Snakepit.Pool, opts}, id: opts[:name])
    :ok = Snakepit.Pool.await_ready(opts[:name], 30_000)
    opts[:name]
  end

  @doc "Polls `fun` until it returns a truthy value (for state the pool reaches on its own)."
  def eventually(fun, attempts \\ 500) do
    case fun.() do
      result when result in [nil, false] and attempts > 0 ->
        Process.sleep(10)
        eventually(fun, attempts - 1)

      result when result in [nil, false] ->
        raise "condition not reached"

      result ->
        result
    end
  end

  @doc "Starts a supervised pool of `Snakepit.Adapters.TestWorker` processes and waits for it."
  def start_test_workers!(opts \\ []) do
    opts = test_worker_options(opts)
    start_supervised!({Snakepit.Pool, opts}, id: opts[:name])
    :ok = Snakepit.Pool.await_ready(opts[:name], 30_000)
    opts[:name]
  end

  @doc """
  Like `start_test_workers!/1`, but the pool is linked to the test, not supervised, for tests that
  stop or kill it themselves. Returns `{pid, name}`.
  """
  def start_owned_test_workers!(opts \\ []) do
    opts = test_worker_options(opts)
    {:ok, pid} = Snakepit.Pool.start_link(opts)
    :ok = Snakepit.Pool.await_ready(opts[:name], 30_000)
    {pid, opts[:name]}
  end

  defp test_worker_options(opts) do
    name = :"fault_pool_#{System.unique_integer([:positive])}"
    Keyword.merge([name: name, size: 2, adapter_module: Snakepit.Adapters.TestWorker], opts)
  end

  @doc "OS pid of the only worker of a pool of size 1."
  def only_worker_pid(pool) do
    [%{os_pid: os_pid}] = Snakepit.list_workers(pool)
    os_pid
  end

  @doc """
  Whether an OS process is running. A reaped process has no /proc entry; a zombie (dead, not yet
  reaped by its new parent) does not run either.
  """
  def os_process_alive?(os_pid) do
    case File.read("/proc/#{os_pid}/stat") do
      {:ok, stat} ->
        [_, after_name] = String.split(stat, ")", parts: 2)
        String.split(after_name) |> hd() |> then(&(&1 not in ["Z", "X"]))

      {:error, _} ->
        false
    end
  end

  @doc "Sends `signal` (e.g. \"KILL\", \"STOP\") to an OS process."
  def os_kill(os_pid, signal) do
    {_, 0} = System.cmd("kill", ["-#{signal}", "#{os_pid}"])
    :ok
  end
end

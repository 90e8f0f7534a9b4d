defmodule Snakepit.TestPool do
  @moduledoc """
  Starts pools of real Python workers running `test/support/python/snakepit_test_adapter.py`,
  or of `snakepit_test_worker`, with the test process as their `:event_listener`: tests wait
  for `{:snakepit_pool_event, pool, event}` instead of polling the pool.
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
        event_listener: self(),
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

    Keyword.merge(
      [name: name, size: 2, adapter_module: Snakepit.Adapters.TestWorker, event_listener: self()],
      opts
    )
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

  @doc """
  Waits until none of `os_pids` runs. Polls /proc: an OS process's end sends the test no event.
  Without a bound of its own: if a process never ends, the test's timeout fails the test.
  """
  def await_gone(os_pids) do
    await_os(fn -> not Enum.any?(os_pids, &os_process_alive?/1) end)
  end

  @doc """
  Polls `fun` until it returns true. Only for facts about OS processes (/proc: pids,
  descriptors, threads), which send no events; never for the pool's own state.
  """
  def await_os(fun) do
    unless fun.() do
      Process.sleep(10)
      await_os(fun)
    end
  end

  @doc "Sends `signal` (e.g. \"KILL\", \"STOP\") to an OS process."
  def os_kill(os_pid, signal) do
    {_, 0} = System.cmd("kill", ["-#{signal}", "#{os_pid}"])
    :ok
  end
end

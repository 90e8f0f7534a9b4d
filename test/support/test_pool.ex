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

  @doc "Whether an OS process exists (a reaped worker has no /proc entry)."
  def os_process_alive?(os_pid), do: File.exists?("/proc/#{os_pid}")
end

defmodule SnakepitBench.OS do
  @moduledoc "OS process checks for the benchmarks (Linux: reads /proc)."

  @doc """
  The interpreter the benchmarks run (`$SNAKEPIT_PYTHON`, else `python3`, resolved to the real
  binary) and the report's lines about it and the machine: `{python, lines}`.
  """
  def python_and_facts do
    python =
      Snakepit.Adapters.Python.resolve_interpreter(System.get_env("SNAKEPIT_PYTHON") || "python3")

    {version, 0} = System.cmd(python, ["--version"], stderr_to_stdout: true)

    cpu =
      case File.read("/proc/cpuinfo") do
        {:ok, info} -> Regex.run(~r/model name\s*:\s*(.+)/, info, capture: :all_but_first)
        _ -> nil
      end

    lines = """
    - interpreter: #{python} (#{String.trim(version)})
    - cores: #{:erlang.system_info(:logical_processors_available)} logical, \
    #{System.schedulers_online()} schedulers online#{if cpu, do: " (#{hd(cpu)})", else: ""}
    - OTP #{System.otp_release()} (ERTS #{:erlang.system_info(:version)}), Elixir #{System.version()}\
    """

    {python, lines}
  end

  @doc "Whether OS process `os_pid` exists and is not a zombie."
  def alive?(os_pid) do
    case File.read("/proc/#{os_pid}/stat") do
      # The state letter follows the command name, which is in parentheses.
      {:ok, stat} -> not String.contains?(stat, ") Z ")
      {:error, _} -> false
    end
  end

  @doc "Waits up to `timeout_ms` for every process in `os_pids` to exit; returns those still alive."
  def await_exit(os_pids, timeout_ms \\ 5_000) do
    case Enum.filter(os_pids, &alive?/1) do
      [] ->
        []

      alive when timeout_ms <= 0 ->
        alive

      alive ->
        Process.sleep(5)
        await_exit(alive, timeout_ms - 5)
    end
  end

  @doc """
  Runs `fun` with the name of a pool started from `opts`, then stops the pool and waits for
  its workers to exit; their OS pids are noted under `:os_pids` in the process dictionary, for
  a final check that none is left.
  """
  def with_pool(opts, fun) do
    name = :"bench_pool_#{System.unique_integer([:positive])}"
    {:ok, pid} = Snakepit.Pool.start_link([name: name] ++ opts)
    :ok = Snakepit.Pool.await_ready(name, 60_000)
    os_pids = Snakepit.Pool.os_pids(name)
    Process.put(:os_pids, os_pids ++ Process.get(:os_pids, []))

    try do
      fun.(name)
    after
      GenServer.stop(pid)
      await_exit(os_pids)
    end
  end
end

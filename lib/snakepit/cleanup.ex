defmodule Snakepit.Cleanup do
  @moduledoc """
  Ends worker OS processes of this run that outlived their pool: SIGTERM to each one's process
  group (so what a worker started goes too), a bounded wait, then SIGKILL to what is left.

  Only processes carrying this run's id (`SNAKEPIT_RUN_ID`) are signalled, so a pid reused by
  an unrelated process since is never touched. Workers of running pools are left alone: their
  pool owns them and would replace a killed one at once.

  Leftovers should not exist (see `Snakepit.ProcessRegistry`): a pool's stop waits until its
  workers are gone, killing them after `:shutdown_grace`. This is the explicit check after it,
  for `Snakepit.cleanup/0` and `Snakepit.run_as_script/2`.
  """

  alias Snakepit.{Native, ProcessRegistry}
  alias Snakepit.Pool.Registry

  # Nothing tells the BEAM when an unrelated OS process ends: /proc is polled this often.
  @poll_ms 20
  # How long SIGKILL may take to end a process before it counts as stuck.
  @kill_wait_ms 1_000

  @doc """
  Worker processes recorded for this run (`Snakepit.ProcessRegistry`) that still run and
  belong to no running pool.
  """
  @spec leftovers() :: [pos_integer()]
  def leftovers do
    owned = MapSet.new(Enum.flat_map(Registry.pools(), &pool_os_pids/1))
    Enum.filter(ProcessRegistry.recorded_pids(), &(&1 not in owned and ours?(&1)))
  end

  @doc """
  Sends SIGTERM to each of `os_pids` still running as a worker of this run (and its process
  group), waits up to `timeout_ms` for them to end, then sends SIGKILL to the rest. Returns
  `:ok` when all are gone, or `{:timeout, still_running}` if some survived SIGKILL too (e.g. a
  process stuck in the kernel).
  """
  @spec run([pos_integer()], non_neg_integer()) :: :ok | {:timeout, [pos_integer()]}
  def run(os_pids, timeout_ms) do
    targets = Enum.filter(os_pids, &ours?/1)
    signal(targets, "TERM")

    case await_gone(targets, deadline(timeout_ms)) do
      [] ->
        :ok

      survivors ->
        signal(survivors, "KILL")

        case await_gone(survivors, deadline(@kill_wait_ms)) do
          [] -> :ok
          still -> {:timeout, still}
        end
    end
  end

  defp pool_os_pids(pool) do
    case Registry.native(pool) do
      nil -> []
      native -> Native.pool_os_pids(native)
    end
  end

  defp signal([], _signal), do: :ok

  defp signal(os_pids, signal) do
    # The group first (a worker leads its own), then the process, in case it left the group.
    targets = Enum.flat_map(os_pids, &["-#{&1}", "#{&1}"])
    System.cmd("kill", ["-#{signal}", "--" | targets], stderr_to_stdout: true)
    :ok
  end

  defp deadline(timeout_ms), do: System.monotonic_time(:millisecond) + timeout_ms

  defp await_gone(os_pids, deadline) do
    case Enum.filter(os_pids, &running?/1) do
      [] ->
        []

      running ->
        if System.monotonic_time(:millisecond) >= deadline do
          running
        else
          Process.sleep(@poll_ms)
          await_gone(running, deadline)
        end
    end
  end

  # A worker of this run: its environment carries this run's id (a reused pid's does not).
  defp ours?(os_pid) do
    case File.read("/proc/#{os_pid}/environ") do
      {:ok, environ} ->
        running?(os_pid) and
          "SNAKEPIT_RUN_ID=#{Snakepit.Application.run_id()}" in String.split(environ, <<0>>)

      {:error, _} ->
        false
    end
  end

  # Running: has a /proc entry and is not a zombie (dead, not yet reaped).
  defp running?(os_pid) do
    case File.read("/proc/#{os_pid}/stat") do
      {:ok, stat} ->
        # The state follows the command name, which is in parentheses and may hold any.
        state = stat |> String.split(")") |> List.last() |> String.split() |> hd()
        state not in ["Z", "X"]

      {:error, _} ->
        false
    end
  end
end

defmodule Snakepit.PoolCyclesTest do
  # Counts the VM's descriptors and threads, so it runs alone (async: false).
  use ExUnit.Case, async: false

  import Snakepit.TestPool

  @moduletag :fault

  test "100 pool start/stop cycles leak no descriptor, thread or process" do
    # One cycle first: the runtime, the spawner thread and the watchdog are started once per VM.
    cycle(0)
    fds = fd_count()
    threads = thread_count()

    for i <- 1..100, do: cycle(i)

    # Reader threads and log tasks end shortly after their worker; descriptors close with them.
    # Facts about this OS process, read from /proc: nothing to wait on but the facts themselves.
    await_os(fn -> fd_count() <= fds + 2 end)
    await_os(fn -> thread_count() <= threads + 2 end)
    assert zombie_children() == []
    # The run's pid file keeps live workers only (compacted as workers are reaped): 200 workers
    # came and went, few lines remain.
    assert length(Snakepit.ProcessRegistry.recorded_pids()) < 40
  end

  defp cycle(i) do
    name = :"cycle_#{i}_#{System.unique_integer([:positive])}"

    {:ok, pid} =
      Snakepit.Pool.start_link(name: name, size: 2, adapter_module: Snakepit.Adapters.TestWorker)

    :ok = Snakepit.Pool.await_ready(name)
    {:ok, _} = Snakepit.execute("ping", %{}, pool: name)
    os_pids = Snakepit.Pool.os_pids(name)
    :ok = GenServer.stop(pid)
    refute Enum.any?(os_pids, &os_process_alive?/1)
  end

  defp fd_count, do: length(File.ls!("/proc/self/fd"))

  defp thread_count do
    File.read!("/proc/self/status")
    |> String.split("\n")
    |> Enum.find_value(fn
      "Threads:" <> n -> String.to_integer(String.trim(n))
      _ -> nil
    end)
  end

  defp zombie_children do
    beam = System.pid()

    for entry <- File.ls!("/proc"),
        Integer.parse(entry) != :error,
        {:ok, stat} <- [File.read("/proc/#{entry}/stat")],
        [_, rest] = String.split(stat, ")", parts: 2),
        [state, ppid | _] = String.split(rest),
        ppid == beam and state == "Z",
        do: entry
  end
end

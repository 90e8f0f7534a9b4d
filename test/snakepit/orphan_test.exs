defmodule Snakepit.OrphanTest do
  # No worker, nor anything it started, outlives the BEAM or its pool.
  use ExUnit.Case, async: true

  import Snakepit.TestPool

  @moduletag :fault
  @moduletag :tmp_dir

  test "a BEAM killed with SIGKILL leaves no worker and no worker's child", %{tmp_dir: dir} do
    script = """
    Application.put_env(:snakepit, :process_registry_dir, #{inspect(dir)})
    {:ok, _} = Application.ensure_all_started(:snakepit_rs)
    {:ok, _} = Snakepit.Pool.start_link(name: :p, size: 2, adapter_module: Snakepit.Adapters.TestWorker)
    :ok = Snakepit.Pool.await_ready(:p)
    children =
      for _ <- 1..4 do
        {:ok, %{"child_pid" => child}} = Snakepit.execute("spawn_child", %{sleep_s: 120}, pool: :p)
        child
      end
    IO.puts("PIDS " <> Enum.join([System.pid() | Snakepit.Pool.os_pids(:p) ++ children], " "))
    Process.sleep(:infinity)
    """

    elixir = System.find_executable("elixir")
    ebin = Path.join(:code.lib_dir(:snakepit_rs), "ebin")

    port =
      Port.open({:spawn_executable, elixir}, [
        :binary,
        :exit_status,
        {:line, 4096},
        args: ["-pa", ebin, "-e", script]
      ])

    assert_receive {^port, {:data, {:eol, "PIDS " <> pids}}}, 30_000
    [beam | processes] = pids |> String.split() |> Enum.map(&String.to_integer/1)
    assert length(processes) == 6
    assert Enum.all?(processes, &os_process_alive?/1)

    os_kill(beam, "KILL")
    assert_receive {^port, {:exit_status, _}}, 5_000

    # Workers die with the BEAM (parent-death signal); their children by the watchdog.
    await_gone(processes)
    # The dead run's registry file is left for the next start to check.
    assert [_] = Path.wildcard(Path.join(dir, "*.pids"))
  end

  test "a new start kills leftovers recorded by a dead run, and nothing else", %{tmp_dir: dir} do
    dead_run = "999999-1"
    leftover = spawn_sleeper(%{"SNAKEPIT_RUN_ID" => dead_run})
    unrelated = spawn_sleeper(%{"SNAKEPIT_RUN_ID" => "someone-else"})
    File.write!(Path.join(dir, "#{dead_run}.pids"), "beam 999999 1\n#{leftover}\n#{unrelated}\n")

    # A live run (this BEAM, under another run id) is left alone.
    live_file = Path.join(dir, "live-run.pids")
    live_child = spawn_sleeper(%{"SNAKEPIT_RUN_ID" => "live-run"})
    File.write!(live_file, "beam #{System.pid()} #{own_start_time()}\n#{live_child}\n")

    assert Snakepit.ProcessRegistry.cleanup_stale_runs(dir) == [leftover]

    await_gone([leftover])
    assert os_process_alive?(unrelated) and os_process_alive?(live_child)
    refute File.exists?(Path.join(dir, "#{dead_run}.pids"))
    assert File.exists?(live_file)
    os_kill(unrelated, "KILL")
    os_kill(live_child, "KILL")
  end

  defp spawn_sleeper(env) do
    vars = Enum.map_join(env, " ", fn {k, v} -> "#{k}=#{v}" end)

    {out, 0} =
      System.cmd("sh", ["-c", "#{vars} setsid sleep 60 >/dev/null 2>&1 </dev/null & echo $!"])

    out |> String.trim() |> String.to_integer()
  end

  defp own_start_time do
    [_, after_name] = File.read!("/proc/#{System.pid()}/stat") |> String.split(")", parts: 2)
    after_name |> String.split() |> Enum.at(19)
  end
end

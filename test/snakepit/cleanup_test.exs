defmodule Snakepit.CleanupTest do
  # Reads and appends to this run's process registry file, so it runs alone.
  use ExUnit.Case, async: false

  alias Snakepit.{ProcessRegistry, TestPool}

  # An OS process recorded in this run's registry file, as the core records a worker; with
  # `run_id?` it carries this run's id as a worker does.
  defp recorded_process!(run_id?) do
    env = if run_id?, do: [{~c"SNAKEPIT_RUN_ID", ~c"#{Snakepit.Application.run_id()}"}], else: []

    port =
      Port.open({:spawn_executable, System.find_executable("sleep")}, [
        :exit_status,
        args: ["1000"],
        env: env
      ])

    {:os_pid, os_pid} = Port.info(port, :os_pid)
    on_exit(fn -> if TestPool.os_process_alive?(os_pid), do: TestPool.os_kill(os_pid, "KILL") end)
    # Until it has exec'd, the process still has the BEAM's helper's environment.
    TestPool.await_os(fn -> File.read!("/proc/#{os_pid}/cmdline") =~ "sleep" end)
    File.write!(ProcessRegistry.registry_file(), "#{os_pid}\n", [:append])
    os_pid
  end

  test "cleanup/0 ends worker processes of this run that outlived their pool" do
    leftover = recorded_process!(true)
    assert :ok = Snakepit.cleanup()
    refute TestPool.os_process_alive?(leftover)
    assert :ok = Snakepit.cleanup()
  end

  test "cleanup/0 never signals a recorded pid that does not carry this run's id" do
    stranger = recorded_process!(false)
    assert :ok = Snakepit.cleanup()
    assert TestPool.os_process_alive?(stranger)
  end

  test "cleanup/0 leaves the workers of running pools alone" do
    pool = TestPool.start_test_workers!(size: 2)
    os_pids = Snakepit.Pool.os_pids(pool)
    assert :ok = Snakepit.cleanup()
    assert Snakepit.Pool.os_pids(pool) == os_pids
    assert Enum.all?(os_pids, &TestPool.os_process_alive?/1)
  end

  test "cleanup/1 returns the function's result, and :ok when it exits with :noproc" do
    assert Snakepit.cleanup(fn -> {:timeout, [123]} end) == {:timeout, [123]}
    assert Snakepit.cleanup(fn -> exit({:noproc, {GenServer, :call, [:gone, :x]}}) end) == :ok
    assert Snakepit.cleanup(fn -> exit(:noproc) end) == :ok
    assert catch_exit(Snakepit.cleanup(fn -> exit(:other) end)) == :other
  end

  test "Snakepit.Cleanup.run/2 ends what ignores SIGTERM with SIGKILL" do
    pool = TestPool.start_test_workers!(size: 1, adapter_args: ["--ignore-sigterm"])
    [os_pid] = Snakepit.Pool.os_pids(pool)
    assert :ok = Snakepit.Cleanup.run([os_pid], 100)
    refute TestPool.os_process_alive?(os_pid)
  end
end

defmodule Snakepit.ScriptStopTest do
  # What `run_as_script/2` starts and stops in this VM. It stops and restarts the application,
  # so these tests run alone.
  use ExUnit.Case, async: false

  alias Snakepit.{Applications, TestPool}

  @test_workers [adapter_module: Snakepit.Adapters.TestWorker, size: 2]

  setup do
    saved = Application.get_all_env(:snakepit)

    on_exit(fn ->
      for {key, _} <- Application.get_all_env(:snakepit),
          do: Application.delete_env(:snakepit, key)

      for {key, value} <- saved, do: Application.put_env(:snakepit, key, value)
      # Each test leaves the applications as the rest of the suite expects them: running.
      start_application!()
    end)
  end

  # A pool the host application started under Snakepit's own pool supervisor.
  defp start_host_pool! do
    opts = TestPool.options(Keyword.put(@test_workers, :name, :script_host_pool))
    {:ok, pid} = DynamicSupervisor.start_child(Snakepit.PoolSupervisor, {Snakepit.Pool, opts})
    :ok = Snakepit.Pool.await_ready(pid)
    # Through the supervisor: a pool stopped by itself would be restarted.
    on_exit(fn ->
      if sup = Process.whereis(Snakepit.PoolSupervisor),
        do: DynamicSupervisor.terminate_child(sup, pid)
    end)

    pid
  end

  defp start_application! do
    {:ok, _} = Application.ensure_all_started(:snakepit_rs)
    {:ok, _} = Application.ensure_all_started(:snakepit)
    assert Applications.tree_running?()
  end

  defp stop_application! do
    :ok = Applications.stop(Applications.running())
    refute Applications.started?()
    refute Applications.tree_running?()
  end

  test "Snakepit already running: the application and the host's pools keep running" do
    start_application!()
    host = start_host_pool!()
    host_workers = Snakepit.Pool.os_pids(host)

    assert {:ok, %{"status" => "pong"}} =
             Snakepit.run_as_script(fn ->
               Snakepit.execute("ping", %{}, pool: :script_host_pool)
             end)

    assert Applications.started?()
    assert Process.alive?(host)
    assert Snakepit.Pool.os_pids(host) == host_workers
    assert Enum.all?(host_workers, &TestPool.os_process_alive?/1)
  end

  test "the default pool it had to start is stopped, with its workers; the host's pool is not" do
    start_application!()
    host = start_host_pool!()
    refute Process.whereis(Snakepit.Pool)

    {pid, os_pids} =
      Snakepit.run_as_script(
        fn ->
          {:ok, _} = Snakepit.execute("ping", %{})
          {Process.whereis(Snakepit.Pool), Snakepit.Pool.os_pids()}
        end,
        pool_options: @test_workers
      )

    assert is_pid(pid) and length(os_pids) == 2
    refute Process.alive?(pid)
    refute Enum.any?(os_pids, &TestPool.os_process_alive?/1)
    assert Process.alive?(host)
    assert Applications.started?()
  end

  test "with pooling_enabled set after the application started, the pool comes from the config" do
    start_application!()
    Application.put_env(:snakepit, :pooling_enabled, true)
    Application.put_env(:snakepit, :adapter_module, Snakepit.Adapters.TestWorker)
    Application.put_env(:snakepit, :pool_size, 3)

    assert %{workers: 3} = Snakepit.run_as_script(fn -> Snakepit.get_stats() end)
    refute Process.whereis(Snakepit.Pool)
    assert Applications.started?()
  end

  test "Snakepit not running: it starts the application and stops it afterwards" do
    stop_application!()
    assert Snakepit.run_as_script(fn -> Applications.started?() end) == true
    refute Applications.started?()
  end

  test "stop_mode :never leaves the application it started running" do
    stop_application!()
    assert :ok = Snakepit.run_as_script(fn -> :ok end, stop_mode: :never)
    assert Applications.started?()
  end

  test "stop_mode :always stops the application even when it was running, with its pools" do
    start_application!()
    host = start_host_pool!()
    host_workers = Snakepit.Pool.os_pids(host)

    assert :ok = Snakepit.run_as_script(fn -> :ok end, stop_mode: :always)
    refute Applications.started?()
    refute Process.alive?(host)
    refute Enum.any?(host_workers, &TestPool.os_process_alive?/1)
  end

  test "restart: true starts a running application again, from the current configuration" do
    start_application!()
    supervisor = Process.whereis(Snakepit.Supervisor)
    Application.put_env(:snakepit, :pooling_enabled, true)
    Application.put_env(:snakepit, :adapter_module, Snakepit.Adapters.TestWorker)
    Application.put_env(:snakepit, :pool_size, 1)

    {new_supervisor, stats} =
      Snakepit.run_as_script(
        fn -> {Process.whereis(Snakepit.Supervisor), Snakepit.get_stats()} end,
        restart: true
      )

    assert new_supervisor != supervisor
    assert %{workers: 1} = stats
    # Restarted by this call, so it was this call's to stop; the package's own application
    # (what the host depends on) was never stopped.
    refute :snakepit in Applications.running()
  end

  test "a raising function: what it started is stopped, then the exception is raised" do
    stop_application!()

    assert_raise RuntimeError, "boom", fn ->
      Snakepit.run_as_script(fn -> raise "boom" end)
    end

    refute Applications.started?()
  end

  test "pools not ready within :timeout: the function does not run, the pool it started stops" do
    start_application!()
    hung = Keyword.merge(@test_workers, adapter_args: ["--hang-start"], startup_timeout: 60_000)

    assert {:error, :pool_initialization_timeout} =
             Snakepit.run_as_script(fn -> flunk("must not run") end,
               pool_options: hung,
               timeout: 50
             )

    refute Process.whereis(Snakepit.Pool)
    assert Applications.started?()
  end

  test "it starts Snakepit under upstream's name, and stops it afterwards" do
    stop_application!()
    assert Snakepit.run_as_script(fn -> Applications.running() end) == [:snakepit]
    refute Applications.started?()
  end

  test "with only :snakepit_rs running, the tree is this call's: it stops it, not :snakepit_rs" do
    :ok = Application.stop(:snakepit)
    assert Applications.running() == [:snakepit_rs]
    refute Applications.tree_running?()

    assert Snakepit.run_as_script(fn -> Applications.tree_running?() end)
    assert Applications.running() == [:snakepit_rs]
    refute Applications.tree_running?()
  end

  test "an invalid option raises before anything starts" do
    stop_application!()

    assert_raise ArgumentError, ~r/stop_mode/, fn ->
      Snakepit.run_as_script(fn -> :ok end, stop_mode: :sometimes)
    end

    refute Applications.started?()
  end

  test "an invalid pool option: raised after stopping what it started" do
    stop_application!()

    assert_raise ArgumentError, ~r/size/, fn ->
      Snakepit.run_as_script(fn -> :ok end, pool_options: [size: 0])
    end

    refute Applications.started?()
  end
end

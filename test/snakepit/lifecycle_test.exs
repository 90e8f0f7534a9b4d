defmodule Snakepit.LifecycleTest do
  use ExUnit.Case, async: true

  alias Snakepit.{Error, TestPool}

  @moduletag :tmp_dir

  test "workers start concurrently: four workers that each wait for the others all start",
       %{tmp_dir: dir} do
    env = [{"SNAKEPIT_TEST_BARRIER_DIR", dir}, {"SNAKEPIT_TEST_BARRIER_COUNT", "4"}]
    pool = TestPool.start!(size: 4, env: env)
    assert %{workers: 4, available: 4} = Snakepit.get_stats(pool)
    assert length(File.ls!(dir)) == 4
  end

  test "stopping the pool leaves no worker process" do
    opts = TestPool.options(size: 3)
    {:ok, pid} = Snakepit.Pool.start_link(opts)
    :ok = Snakepit.Pool.await_ready(opts[:name])
    os_pids = Snakepit.Pool.os_pids(opts[:name])
    assert length(os_pids) == 3
    assert Enum.all?(os_pids, &TestPool.os_process_alive?/1)

    :ok = GenServer.stop(pid)
    refute Enum.any?(os_pids, &TestPool.os_process_alive?/1)

    assert {:error, %Error{reason: :pool_not_initialized}} =
             Snakepit.execute("ping", %{}, pool: opts[:name])
  end

  test "requests running or queued when the pool stops get :pool_shutdown" do
    opts = TestPool.options(size: 1, shutdown_grace: 200)
    {:ok, pid} = Snakepit.Pool.start_link(opts)
    :ok = Snakepit.Pool.await_ready(opts[:name])
    running = Task.async(fn -> Snakepit.execute("sleep", %{ms: 5_000}, pool: opts[:name]) end)
    TestPool.eventually(fn -> Snakepit.get_stats(opts[:name]).busy == 1 end)
    queued = Task.async(fn -> Snakepit.execute("ping", %{}, pool: opts[:name]) end)
    TestPool.eventually(fn -> Snakepit.get_stats(opts[:name]).queued == 1 end)

    :ok = GenServer.stop(pid)
    assert {:error, %Error{reason: :pool_shutdown}} = Task.await(running)
    assert {:error, %Error{reason: :pool_shutdown}} = Task.await(queued)
  end

  test "a worker that dies mid-request fails it with :worker_crashed and is replaced" do
    pool = TestPool.start!(size: 1)
    [%{os_pid: old}] = Snakepit.list_workers(pool)

    assert {:error, %Error{reason: :worker_crashed, message: message}} =
             Snakepit.execute("crash", %{status: 3}, pool: pool)

    assert message =~ "exited"
    assert {:ok, %{"pid" => new}} = Snakepit.execute("whoami", %{}, pool: pool)
    assert new != old
    refute TestPool.os_process_alive?(old)
    assert %{worker_crashes: 1, workers: 1} = Snakepit.get_stats(pool)
  end

  test "an adapter that cannot load: await_ready explains why" do
    opts = TestPool.options(adapter_args: ["--adapter", "no_such_module.Adapter"])
    start_supervised!({Snakepit.Pool, opts})

    assert {:error, %Error{reason: :pool_not_initialized, message: message}} =
             Snakepit.Pool.await_ready(opts[:name])

    assert message =~ "no_such_module"

    assert {:error, %Error{reason: :pool_not_initialized}} =
             Snakepit.execute("ping", %{}, pool: opts[:name])
  end

  test "a missing interpreter fails the start with a clear reason" do
    Process.flag(:trap_exit, true)

    assert {:error, {:shutdown, message}} =
             Snakepit.Pool.start_link(TestPool.options(python_executable: "/no/such/python"))

    assert message =~ "/no/such/python"
  end

  test "await_ready on a pool that is not running" do
    assert {:error, %Error{reason: :pool_not_initialized}} = Snakepit.Pool.await_ready(:nope, 100)
  end

  describe "options" do
    test "invalid options raise ArgumentError naming the option" do
      for {opts, name} <- [
            {[size: 0], ":size"},
            {[queue_timeout: :soon], ":queue_timeout"},
            {[max_queue_size: -1], ":max_queue_size"},
            {[adapter_module: String], ":adapter_module"},
            {[adapter_args: "--adapter x"], ":adapter_args"},
            {[env: [{"A", 1}]], ":env"},
            {[startup_timeout: 0], ":startup_timeout"}
          ] do
        error = assert_raise ArgumentError, fn -> Snakepit.Pool.start_link(opts) end
        assert Exception.message(error) =~ name
        assert Exception.message(error) =~ "got:"
      end

      error = assert_raise ArgumentError, fn -> Snakepit.Pool.start_link(sise: 2) end
      assert Exception.message(error) =~ "sise"
    end

    test "child_spec works under a supervisor" do
      opts = TestPool.options(size: 1)
      assert %{id: {Snakepit.Pool, _}, shutdown: shutdown} = Snakepit.Pool.child_spec(opts)
      # Room for SIGTERM, the default 2 s grace, then SIGKILL.
      assert shutdown > 2_000
      start_supervised!({Snakepit.Pool, opts})
      assert :ok = Snakepit.Pool.await_ready(opts[:name])
    end
  end
end

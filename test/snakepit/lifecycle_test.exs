defmodule Snakepit.LifecycleTest do
  use ExUnit.Case, async: true

  alias Snakepit.{Call, Error, TestBlocker, TestPool}

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

  test "requests running or queued when the pool stops get :pool_shutdown", %{tmp_dir: dir} do
    opts = TestPool.options(size: 1, shutdown_grace: 200)
    {:ok, pid} = Snakepit.Pool.start_link(opts)
    :ok = Snakepit.Pool.await_ready(opts[:name])
    blocker = TestBlocker.new!(dir)
    # Submitted from this process: once `submit` returns, the first request holds the only
    # worker and the second waits in the queue.
    {:ok, running} = Call.submit(opts[:name], "block", TestBlocker.args(blocker))
    TestBlocker.assert_blocked(blocker)
    {:ok, queued} = Call.submit(opts[:name], "ping", %{})

    :ok = GenServer.stop(pid)
    assert {:error, %Error{reason: :pool_shutdown}} = Call.await(running)
    assert {:error, %Error{reason: :pool_shutdown}} = Call.await(queued)
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

  test "an adapter that cannot load: await_ready explains why; requests fail once the circuit opens" do
    opts =
      TestPool.options(
        adapter_args: ["--adapter", "no_such_module.Adapter"],
        max_start_failures: 1
      )

    name = opts[:name]
    start_supervised!({Snakepit.Pool, opts})
    assert_receive {:snakepit_pool_event, ^name, {:start_failed, _}}, 30_000

    assert {:error, %Error{reason: :pool_not_initialized, message: message}} =
             Snakepit.Pool.await_ready(name)

    assert message =~ "no_such_module"

    # The pool keeps retrying; while no worker runs and the circuit is open, requests fail at once.
    assert_receive {:snakepit_pool_event, ^name, {:circuit_open, 1}}, 30_000
    assert {:error, %Error{reason: :circuit_open}} = Snakepit.execute("ping", %{}, pool: name)
  end

  test "a missing interpreter fails the start with a clear reason" do
    Process.flag(:trap_exit, true)

    assert {:error, {:shutdown, message}} =
             Snakepit.Pool.start_link(TestPool.options(python_executable: "/no/such/python"))

    assert message =~ "/no/such/python"
  end

  test "an interpreter that does not answer is killed within the startup timeout", %{
    tmp_dir: dir
  } do
    Process.flag(:trap_exit, true)
    pid_file = Path.join(dir, "interpreter.pid")
    python = Path.join(dir, "python3")
    # Asked where it is (`-c "import sys; print(sys.executable)"`), it never answers.
    File.write!(python, """
    #!/bin/sh
    echo $$ > "#{pid_file}"
    exec sleep 100000
    """)

    File.chmod!(python, 0o755)

    # Without a bound, this call would hang and the test's timeout would fail it.
    assert {:error, {:shutdown, message}} =
             Snakepit.Pool.start_link(
               TestPool.options(python_executable: python, startup_timeout: 2_000)
             )

    assert message =~ python
    assert message =~ "2000 ms"
    assert message =~ ":startup_timeout"
    # Killed and reaped before start_link returned: no process is left behind.
    os_pid = pid_file |> File.read!() |> String.trim() |> String.to_integer()
    refute TestPool.os_process_alive?(os_pid)
    refute File.exists?("/proc/#{os_pid}")
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

defmodule Snakepit.FaultTest do
  # Real faults on real processes: signals, hangs, garbage on the protocol fd, dead callers.
  # Workers are `snakepit_test_worker`, told per request how to misbehave.
  use ExUnit.Case, async: true

  import Snakepit.TestPool
  alias Snakepit.Error

  @moduletag :fault

  describe "a crashed worker" do
    test "kill -9 mid-request fails that request with :worker_crashed and is replaced" do
      pool = start_test_workers!(size: 1)
      victim = only_worker_pid(pool)
      caller = Task.async(fn -> Snakepit.execute("sleep", %{ms: 10_000}, pool: pool) end)
      eventually(fn -> Snakepit.get_stats(pool).busy == 1 end)

      os_kill(victim, "KILL")

      assert {:error, %Error{reason: :worker_crashed, category: :worker}} = Task.await(caller)
      refute os_process_alive?(victim)
      assert {:ok, %{"pid" => replacement}} = Snakepit.execute("ping", %{}, pool: pool)
      assert replacement != victim
      assert %{worker_crashes: 1, workers: 1} = Snakepit.get_stats(pool)
    end

    for signal <- ["SEGV", "TERM", "ABRT"] do
      test "death by SIG#{signal} is :worker_crashed" do
        pool = start_test_workers!(size: 1)

        assert {:error, %Error{reason: :worker_crashed}} =
                 Snakepit.execute("crash", %{signal: unquote(signal)}, pool: pool)

        assert {:ok, _} = Snakepit.execute("ping", %{}, pool: pool)
      end
    end

    test "an exit with a status is :worker_crashed" do
      pool = start_test_workers!(size: 1)

      assert {:error, %Error{reason: :worker_crashed}} =
               Snakepit.execute("crash", %{status: 7}, pool: pool)

      assert {:ok, _} = Snakepit.execute("ping", %{}, pool: pool)
    end
  end

  describe "a hung worker" do
    test "SIGSTOP: the caller gets :timeout, the worker is killed after the cancel grace and replaced" do
      pool = start_test_workers!(size: 2, cancel_grace: 200)

      caller =
        Task.async(fn -> Snakepit.execute("sleep", %{ms: 200}, pool: pool, timeout: 100) end)

      eventually(fn -> Snakepit.get_stats(pool).busy == 1 end)
      [stopped] = for %{status: :busy, os_pid: pid} <- Snakepit.list_workers(pool), do: pid
      os_kill(stopped, "STOP")

      assert {:error, %Error{reason: :timeout}} = Task.await(caller)

      # Until it is replaced, the stopped worker gets no work.
      for _ <- 1..10 do
        assert {:ok, %{"pid" => pid}} = Snakepit.execute("ping", %{}, pool: pool)
        assert pid != stopped
      end

      eventually(fn -> not os_process_alive?(stopped) end)
      eventually(fn -> Snakepit.get_stats(pool).available == 2 end)
      assert %{workers_killed: 1, timeouts: 1, workers: 2} = Snakepit.get_stats(pool)
    end

    test "a worker that never answers is killed after the grace period; one that answers is kept" do
      pool = start_test_workers!(size: 1, cancel_grace: 1_000)
      patient = only_worker_pid(pool)

      # Answers 100 ms after its timeout: within the grace period, so it is kept, and it was
      # sent a cancel frame for the request.
      assert {:error, %Error{reason: :timeout}} =
               Snakepit.execute("sleep", %{ms: 200}, pool: pool, timeout: 100)

      assert {:ok, [_cancelled_id]} = Snakepit.execute("cancels", %{}, pool: pool)
      assert only_worker_pid(pool) == patient

      assert {:error, %Error{reason: :timeout}} =
               Snakepit.execute("hang", %{}, pool: pool, timeout: 100)

      eventually(fn -> not os_process_alive?(patient) end)
      assert {:ok, %{"pid" => replacement}} = Snakepit.execute("ping", %{}, pool: pool)
      assert replacement != patient
    end

    test "a worker that stops reading mid-frame: nothing waits on it, the pool recovers" do
      pool = start_test_workers!(size: 1, cancel_grace: 100, max_frame_size: 4_000_000)
      frozen = only_worker_pid(pool)
      os_kill(frozen, "STOP")
      # Far larger than a pipe's buffer: the write is finished in the background, the cancel
      # frame queues behind it, and the worker is killed after the grace period.
      big = String.duplicate("x", 1_000_000)

      assert {:error, %Error{reason: :timeout}} =
               Snakepit.execute("echo", %{data: big}, pool: pool, timeout: 200)

      eventually(fn -> not os_process_alive?(frozen) end)
      assert {:ok, %{"data" => ^big}} = Snakepit.execute("echo", %{data: big}, pool: pool)
    end

    test "stopping a pool whose worker stopped reading mid-frame does not hang" do
      {pid, name} = start_owned_test_workers!(size: 1, shutdown_grace: 200)
      [frozen] = Snakepit.Pool.os_pids(name)
      os_kill(frozen, "STOP")

      caller =
        Task.async(fn ->
          Snakepit.execute("echo", %{data: String.duplicate("y", 500_000)}, pool: name)
        end)

      eventually(fn -> Snakepit.get_stats(name).busy == 1 end)

      :ok = GenServer.stop(pid)
      assert {:error, %Error{reason: :pool_shutdown}} = Task.await(caller)
      refute os_process_alive?(frozen)
    end

    test "the pool enforces timeouts even when the caller is gone" do
      pool = start_test_workers!(size: 1, cancel_grace: 100)
      hung = only_worker_pid(pool)

      # The caller is killed well before its timeout (1 s, long enough on a loaded machine).
      {caller, ref} =
        spawn_monitor(fn -> Snakepit.execute("hang", %{}, pool: pool, timeout: 1_000) end)

      eventually(fn -> Snakepit.get_stats(pool).busy == 1 end)
      Process.exit(caller, :kill)
      assert_receive {:DOWN, ^ref, :process, _, :killed}
      assert Snakepit.get_stats(pool).timeouts == 0

      eventually(fn -> not os_process_alive?(hung) end)
      assert {:ok, _} = Snakepit.execute("ping", %{}, pool: pool)
    end

    test "idle workers are health-checked; one that stops answering is replaced" do
      pool =
        start_test_workers!(
          size: 1,
          health_check_interval: 100,
          health_check_timeout: 100,
          cancel_grace: 100
        )

      frozen = only_worker_pid(pool)
      os_kill(frozen, "STOP")

      eventually(fn -> not os_process_alive?(frozen) end)
      eventually(fn -> Snakepit.get_stats(pool).available == 1 end)
      assert only_worker_pid(pool) != frozen
      assert Snakepit.get_stats(pool).health_checks >= 1
    end
  end

  describe "frames larger than a pipe's buffer" do
    test "back to back, then small ones, then a prompt stop" do
      {pid, name} = start_owned_test_workers!(size: 1)
      big = String.duplicate("z", 300_000)

      # Regression: the writer that finishes a large frame in the background deadlocked on its
      # own lock when done, so the next frame (or stop) to that worker waited forever.
      for _ <- 1..5 do
        assert {:ok, %{"data" => ^big}} = Snakepit.execute("echo", %{data: big}, pool: name)
      end

      assert {:ok, _} = Snakepit.execute("ping", %{}, pool: name)
      stopper = Task.async(fn -> GenServer.stop(pid) end)
      assert :ok = Task.await(stopper, 5_000)
    end
  end

  describe "a worker that breaks the protocol" do
    for {command, args} <- [
          {"garbage", %{}},
          {"garbage_raw", %{}},
          {"oversized", %{bytes: 5_000}},
          {"wrong_id", %{}}
        ] do
      test "#{command}: its caller gets :protocol_error and the worker is replaced" do
        pool = start_test_workers!(size: 1, max_frame_size: 4_096)
        liar = only_worker_pid(pool)

        assert {:error, %Error{reason: :protocol_error, message: message}} =
                 Snakepit.execute(unquote(command), unquote(Macro.escape(args)), pool: pool)

        assert message =~ "broke the protocol"
        eventually(fn -> not os_process_alive?(liar) end)
        assert {:ok, %{"pid" => pid}} = Snakepit.execute("ping", %{}, pool: pool)
        assert pid != liar
      end
    end

    test "args beyond max_frame_size are refused before reaching a worker" do
      pool = start_test_workers!(size: 1, max_frame_size: 1_000)

      assert {:error, %Error{reason: :args_too_large}} =
               Snakepit.execute("echo", %{data: String.duplicate("x", 2_000)}, pool: pool)

      assert {:ok, _} = Snakepit.execute("echo", %{data: "small"}, pool: pool)
    end
  end

  describe "callers" do
    test "a caller that dies while queued is dropped: its request never runs" do
      pool = start_test_workers!(size: 1)
      busy = Task.async(fn -> Snakepit.execute("sleep", %{ms: 300}, pool: pool) end)
      eventually(fn -> Snakepit.get_stats(pool).busy == 1 end)
      {doomed, ref} = spawn_monitor(fn -> Snakepit.execute("crash", %{status: 9}, pool: pool) end)
      eventually(fn -> Snakepit.get_stats(pool).queued == 1 end)

      Process.exit(doomed, :kill)
      assert_receive {:DOWN, ^ref, :process, _, :killed}
      eventually(fn -> Snakepit.get_stats(pool).queued == 0 end)

      assert {:ok, _} = Task.await(busy)
      worker = only_worker_pid(pool)
      # Had the dropped request run, the worker would have exited with status 9.
      assert {:ok, %{"pid" => ^worker}} = Snakepit.execute("ping", %{}, pool: pool)
      assert %{callers_gone: 1, worker_crashes: 0} = Snakepit.get_stats(pool)
    end

    test "a caller that dies while its request runs: the result is discarded, the worker reused" do
      pool = start_test_workers!(size: 1)
      worker = only_worker_pid(pool)
      {doomed, ref} = spawn_monitor(fn -> Snakepit.execute("sleep", %{ms: 200}, pool: pool) end)
      eventually(fn -> Snakepit.get_stats(pool).busy == 1 end)
      Process.exit(doomed, :kill)
      assert_receive {:DOWN, ^ref, :process, _, :killed}

      assert {:ok, %{"pid" => ^worker}} = Snakepit.execute("ping", %{}, pool: pool)
      assert %{worker_crashes: 0, completed: 2} = Snakepit.get_stats(pool)
    end
  end

  describe "start failures" do
    test "a pool whose workers cannot start reports it" do
      Process.flag(:trap_exit, true)

      for flag <- ["--fail-start", "--fatal-start", "--bad-handshake"] do
        name = :"failing_#{System.unique_integer([:positive])}"

        start_supervised!(
          {Snakepit.Pool,
           name: name, size: 2, adapter_module: Snakepit.Adapters.TestWorker, adapter_args: [flag]},
          id: name
        )

        assert {:error, %Error{reason: :pool_not_initialized}} = Snakepit.Pool.await_ready(name)
      end
    end

    test "a worker that does not finish its handshake in time is killed" do
      name = :"hanging_#{System.unique_integer([:positive])}"

      start_supervised!(
        {Snakepit.Pool,
         name: name,
         size: 1,
         startup_timeout: 200,
         adapter_module: Snakepit.Adapters.TestWorker,
         adapter_args: ["--hang-start"]},
        id: name
      )

      assert {:error, %Error{message: message}} = Snakepit.Pool.await_ready(name)
      assert message =~ "handshake"
      eventually(fn -> Snakepit.Pool.os_pids(name) == [] end)
    end

    @tag :tmp_dir
    test "repeated start failures open the circuit; a successful start closes it", %{tmp_dir: dir} do
      marker = Path.join(dir, "fail")
      worker = Snakepit.Adapters.TestWorker.executable_path([])
      # The worker refuses to start while the marker file exists.
      script = ~s(if [ -e "#{marker}" ]; then exit 3; fi; exec "#{worker}")

      pool =
        start_test_workers!(
          size: 1,
          max_start_failures: 2,
          adapter_module: Snakepit.ShellAdapter,
          adapter_args: [script]
        )

      File.write!(marker, "")

      assert {:error, %Error{reason: :worker_crashed}} =
               Snakepit.execute("crash", %{}, pool: pool)

      eventually(fn -> Snakepit.get_stats(pool).circuit_open end)

      assert {:error, %Error{reason: :circuit_open, category: :pool}} =
               Snakepit.execute("ping", %{}, pool: pool)

      File.rm!(marker)
      eventually(fn -> Snakepit.get_stats(pool).workers == 1 end, 1_000)
      refute Snakepit.get_stats(pool).circuit_open
      assert {:ok, _} = Snakepit.execute("ping", %{}, pool: pool)
    end
  end

  describe "recycling" do
    test "worker_max_requests: the replacement is ready before the old worker goes; nothing fails" do
      pool = start_test_workers!(size: 1, worker_max_requests: 5)
      first = only_worker_pid(pool)

      results = for i <- 1..30, do: Snakepit.execute("echo", %{i: i}, pool: pool)
      assert Enum.all?(results, &match?({:ok, _}, &1))

      eventually(fn -> not os_process_alive?(first) end)
      stats = Snakepit.get_stats(pool)
      # Requests keep flowing to the old worker while its replacement starts, so fewer recycles
      # than 30 / 5 happen — none of them costs a request.
      assert stats.worker_recycles >= 1
      assert stats.errors == 0 and stats.worker_crashes == 0
    end

    test "worker_ttl retires a worker that is never idle, without failing a request" do
      pool = start_test_workers!(size: 1, worker_ttl: 150)
      first = only_worker_pid(pool)
      stop_at = System.monotonic_time(:millisecond) + 600

      results =
        Stream.repeatedly(fn -> Snakepit.execute("sleep", %{ms: 5}, pool: pool) end)
        |> Enum.take_while(fn _ -> System.monotonic_time(:millisecond) < stop_at end)

      assert Enum.all?(results, &match?({:ok, _}, &1))
      eventually(fn -> not os_process_alive?(first) end)
      assert %{errors: 0, worker_crashes: 0} = Snakepit.get_stats(pool)
    end

    test "worker_ttl retires idle workers" do
      pool = start_test_workers!(size: 2, worker_ttl: 200)
      old = Snakepit.Pool.os_pids(pool)
      eventually(fn -> Enum.all?(old, &(not os_process_alive?(&1))) end)
      eventually(fn -> Snakepit.get_stats(pool).available == 2 end)
      assert {:ok, _} = Snakepit.execute("ping", %{}, pool: pool)
    end
  end

  describe "stopping" do
    test "never hangs: a worker that ignores SIGTERM and hangs is killed after the grace period" do
      {pid, name} =
        start_owned_test_workers!(shutdown_grace: 300, adapter_args: ["--ignore-sigterm"])

      os_pids = Snakepit.Pool.os_pids(name)
      caller = Task.async(fn -> Snakepit.execute("hang", %{}, pool: name) end)
      eventually(fn -> Snakepit.get_stats(name).busy == 1 end)

      :ok = GenServer.stop(pid)
      assert {:error, %Error{reason: :pool_shutdown}} = Task.await(caller)
      refute Enum.any?(os_pids, &os_process_alive?/1)
    end

    test "a pool process killed outright still takes its workers with it" do
      {pid, name} = start_owned_test_workers!()
      Process.unlink(pid)
      os_pids = Snakepit.Pool.os_pids(name)

      # No terminate/2 runs: the native pool notices its owner's death through a monitor.
      Process.exit(pid, :kill)
      eventually(fn -> not Enum.any?(os_pids, &os_process_alive?/1) end)

      assert {:error, %Error{reason: :pool_shutdown}} = Snakepit.execute("ping", %{}, pool: name)
    end

    test "stops what workers started, with their process group" do
      {pid, name} = start_owned_test_workers!(size: 1)

      {:ok, %{"child_pid" => child}} = Snakepit.execute("spawn_child", %{sleep_s: 60}, pool: name)

      assert os_process_alive?(child)

      :ok = GenServer.stop(pid)
      eventually(fn -> not os_process_alive?(child) end)
    end
  end
end
